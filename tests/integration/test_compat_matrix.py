"""The README's compatibility table, measured (#20): client library x protocol version x
feature, through Moat over TLS in front of Mosquitto, and the same cell against Mosquitto's
own TLS listener (so a cell that fails through Moat says whether the bare broker fails too).

Every cell is one test. The results are written as JSON to $MOAT_COMPAT_JSON (default:
compat.json in the pytest base temp dir); `tests/integration/compat_table.py` turns them into
the Markdown table of the README:
    MOAT_COMPAT_JSON=/tmp/compat.json pytest tests/integration/test_compat_matrix.py
    python3 tests/integration/compat_table.py /tmp/compat.json --readme README.md"""

import json
import os
import subprocess
import time

import pytest

import fleet_targets as ft
import js_harness as js
import moat_harness as h
from fleet_targets import DENIED, NotOffered

FEATURES = ["QoS 0", "QoS 1", "QoS 2", "retained", "will", "keepalive 0", "persistent session",
            "topic alias", "shared subscription", "# over a denied branch"]
VERSIONS = {3: "3.1", 4: "3.1.1", 5: "5.0"}
CLIENTS = ["paho-mqtt", "libmosquitto", "MQTT.js"]

RESULTS = {}


# ---------------------------------------------------------------------------------------------
# fixtures: one broker pair and one Moat for the whole matrix

@pytest.fixture(scope="module")
def env(tmp_path_factory, certs):
    base = tmp_path_factory.mktemp("compat")
    started = []

    def broker_factory(**kw):
        d = base / ("broker%d" % len(started))
        d.mkdir()
        b = h.Mosquitto(str(d), **kw)
        started.append(b)
        return b.start()

    plain = broker_factory()
    reference = ft.MosquittoTls(broker_factory, certs, str(base / "tlsbroker"))
    mdir = base / "moat"
    mdir.mkdir()
    moat = h.Moat(str(mdir), certs, plain.port, ft.FLEET_POLICY).start()
    hub = None if js.missing_reason() else js.Hub(str(base))
    yield {"moat": ft.ThroughMoat(moat, plain), "mosquitto": reference, "hub": hub}
    if hub:
        hub.close()
    try:
        moat.stop()
    finally:
        moat.kill()
        for b in started:
            b.stop()
        out = os.environ.get("MOAT_COMPAT_JSON") or str(base / "compat.json")
        rows = [{"target": t, "client": c, "version": v, "feature": f, "result": r}
                for (t, c, v, f), r in sorted(RESULTS.items())]
        with open(out, "w") as f:
            json.dump({"mosquitto": _mosquitto_version(), "results": rows}, f, indent=1)


def _mosquitto_version():
    r = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=10)
    return (r.stdout + r.stderr).splitlines()[0].strip()


# ---------------------------------------------------------------------------------------------
# client adapters for paho and MQTT.js (libmosquitto is driven by its command-line tools)

class MqttJsClient:
    def __init__(self, hub, target, version, client_id=None, keepalive=60, clean=True,
                 will=None, cert="device1"):
        kw = {"keepalive": keepalive, "clean": clean}
        if version == 3:
            kw["options"] = {"protocolId": "MQIsdp"}
        if will:
            kw["will"] = {"topic": will["topic"], "payload": js.b64(will["payload"]),
                          "qos": will.get("qos", 0), "retain": will.get("retain", False)}
        if version == 5 and not clean:
            kw["properties"] = {"sessionExpiryInterval": 3600}
        self.version = version
        self.c = js.MqttJs(hub, target, version=version, cert=cert,
                           client_id=client_id or ft.new_client_id("js"), **kw)
        self.client_id = self.c.client_id

    def connect(self):
        e = self.c.connect()
        if e["event"] != "connect":
            return None, None
        return e["reasonCode"], int(bool(e.get("sessionPresent")))

    def subscribe(self, filt, qos=1):
        granted = self.c.subscribe({filt: qos})
        return [g["qos"] if isinstance(g, dict) else g for g in granted]

    def publish(self, topic, payload, qos=0, retain=False, alias=None):
        props = None
        if alias is not None:
            if self.version != 5:
                raise NotOffered("topic aliases are MQTT 5")
            props = {"topicAlias": alias}
        e = self.c.publish(topic, payload, qos, retain, properties=props)
        assert not e.get("error"), e

    def messages(self, count, timeout=10.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            try:
                m = self.c.message(max(0.05, deadline - time.monotonic()))
            except AssertionError:
                break
            out.append(ft.Message(m["topic"], m["payload"], m.get("retain"), m.get("qos")))
        return out

    def quiet(self, wait=0.5):
        return self.messages(1 << 20, wait)

    def drop(self):
        self.c.destroy()

    def disconnect(self):
        try:
            self.c.end()
        except AssertionError:
            pass
        self.c.close()


@pytest.fixture
def make(env):
    """make(client, target, version, **kw) -> connected-able client adapter; closed after."""
    made = []

    def mk(client, target, version, **kw):
        if client == "paho-mqtt":
            c = ft.Paho(target, version, **kw)
        else:
            if env["hub"] is None:
                pytest.skip(js.missing_reason())
            c = MqttJsClient(env["hub"], target, version, **kw)
        made.append(c)
        return c

    yield mk
    for c in made:
        try:
            c.disconnect()
        except Exception:
            pass


def up(c):
    rc, present = c.connect()
    assert rc == 0, "CONNACK %r" % rc
    return present


# ---------------------------------------------------------------------------------------------
# the features, for paho and MQTT.js

def interactive(feature, client, t, version, make, tag):
    topic = "compat/%s" % tag
    payload = tag.encode()
    if feature.startswith("QoS"):
        qos = int(feature[-1])
        sub = make(client, t, version)
        up(sub)
        assert sub.subscribe(topic, qos) == [qos]
        pub = make(client, t, version)
        up(pub)
        pub.publish(topic, payload, qos)
        got = sub.messages(1)
        assert [(m.topic, m.payload) for m in got] == [(topic, payload)]
    elif feature == "retained":
        pub = make(client, t, version)
        up(pub)
        pub.publish(topic, payload, 1, retain=True)
        sub = make(client, t, version)
        up(sub)
        assert sub.subscribe(topic, 1) == [1]
        got = sub.messages(1)
        assert [(m.topic, m.payload, m.retain) for m in got] == [(topic, payload, True)]
    elif feature == "will":
        watcher = make("paho-mqtt", t, 4)
        up(watcher)
        assert watcher.subscribe(topic, 1) == [1]
        dev = make(client, t, version, will={"topic": topic, "payload": payload, "qos": 1})
        up(dev)
        dev.drop()
        got = watcher.messages(1, 15)
        assert [(m.topic, m.payload) for m in got] == [(topic, payload)]
    elif feature == "keepalive 0":
        dev = make(client, t, version, keepalive=0)
        up(dev)
        assert dev.subscribe(topic, 1) == [1]
        dev.publish(topic, payload, 1)
        assert [(m.topic, m.payload) for m in dev.messages(1)] == [(topic, payload)]
    elif feature == "persistent session":
        cid = ft.new_client_id("persist")
        dev = make(client, t, version, client_id=cid, clean=False)
        up(dev)
        assert dev.subscribe(topic, 1) == [1]
        dev.disconnect()
        pub = make(client, t, version)
        up(pub)
        pub.publish(topic, payload, 1)
        again = make(client, t, version, client_id=cid, clean=False)
        present = up(again)
        # MQTT 3.1 has no session-present flag (the CONNACK byte is reserved).
        assert present == 1 or version == 3, "no session present"
        got = again.messages(1)
        assert [(m.topic, m.payload) for m in got] == [(topic, payload)]
    elif feature == "topic alias":
        if version != 5:
            raise NotOffered("MQTT 5 only")
        sub = make(client, t, version)
        up(sub)
        assert sub.subscribe(topic, 1) == [1]
        pub = make(client, t, version)
        up(pub)
        pub.publish(topic, payload, 1, alias=1)
        pub.publish(topic, payload + b"-again", 1, alias=1)
        got = sub.messages(2)
        assert [(m.topic, m.payload) for m in got] == [(topic, payload),
                                                       (topic, payload + b"-again")]
    elif feature == "shared subscription":
        sub = make(client, t, version)
        up(sub)
        assert sub.subscribe("$share/compat/" + topic, 1) == [1]
        pub = make(client, t, version)
        up(pub)
        pub.publish(topic, payload, 1)
        assert [(m.topic, m.payload) for m in sub.messages(1)] == [(topic, payload)]
    elif feature == "# over a denied branch":
        sub = make(client, t, version)
        up(sub)
        assert sub.subscribe("#", 1) == [1]
        pub = make("paho-mqtt", t, 4, cert="device2")
        up(pub)
        pub.publish(DENIED, payload, 1)
        pub.publish("test/visible", payload, 1)
        got = [(m.topic, m.payload) for m in sub.messages(1 << 10, 2.0)
               if m.topic.startswith("test/") and m.payload == payload]
        assert got == [("test/visible", payload)], got
    else:
        raise AssertionError("unknown feature " + feature)


# ---------------------------------------------------------------------------------------------
# the features, for libmosquitto (mosquitto_pub / mosquitto_sub)

def libmosquitto(feature, t, version, tag):
    mc = ft.MosquittoClients
    topic = "compat/%s" % tag
    subs = []

    def sub(filt, count, qos=1, **kw):
        s = mc.Sub(t, version, filt, count, qos=qos, **kw)
        subs.append(s)
        return s

    try:
        if feature.startswith("QoS"):
            qos = int(feature[-1])
            s = sub(topic, 1, qos)
            s.wait_subscribed()
            mc.pub(t, version, topic, tag, qos)
            rc, msgs, err = s.result()
            assert rc == 0 and [(m.topic, m.payload) for m in msgs] == [(topic, tag.encode())], err
        elif feature == "retained":
            mc.pub(t, version, topic, tag, 1, retain=True)
            s = sub(topic, 1)
            rc, msgs, err = s.result()
            assert rc == 0, err
            assert [(m.topic, m.payload, m.retain) for m in msgs] == [(topic, tag.encode(), True)]
        elif feature == "will":
            watcher = sub(topic, 1)
            watcher.wait_subscribed()
            dev = sub("compat/%s/none" % tag, 1, extra=["--will-topic", topic, "--will-payload",
                                                        tag, "--will-qos", "1"], wait=30)
            dev.wait_subscribed()
            dev.kill()
            rc, msgs, err = watcher.result()
            assert rc == 0 and [(m.topic, m.payload) for m in msgs] == [(topic, tag.encode())], err
        elif feature == "keepalive 0":
            sub(topic, 1, keepalive=0)  # raises NotOffered: the tools refuse it
        elif feature == "persistent session":
            cid = ft.new_client_id("mpersist")
            extra = ["-c"] + (["-x", "3600"] if version == 5 else [])
            first = sub(topic, 1, client_id=cid, extra=extra + ["-E"])
            rc, _, err = first.result()
            assert rc == 0, err
            mc.pub(t, version, topic, tag, 1)
            again = sub(topic, 1, client_id=cid, extra=extra)
            rc, msgs, err = again.result()
            assert rc == 0 and [(m.topic, m.payload) for m in msgs] == [(topic, tag.encode())], err
        elif feature == "topic alias":
            if version != 5:
                raise NotOffered("MQTT 5 only")
            s = sub(topic, 1)
            s.wait_subscribed()
            mc.pub(t, version, topic, tag, 1, extra=["-D", "publish", "topic-alias", "1"])
            rc, msgs, err = s.result()
            assert rc == 0 and [(m.topic, m.payload) for m in msgs] == [(topic, tag.encode())], err
        elif feature == "shared subscription":
            s = sub("$share/compat/" + topic, 1)
            s.wait_subscribed()
            mc.pub(t, version, topic, tag, 1)
            rc, msgs, err = s.result()
            assert rc == 0 and [(m.topic, m.payload) for m in msgs] == [(topic, tag.encode())], err
        elif feature == "# over a denied branch":
            s = sub("test/#", 1, wait=5)
            s.wait_subscribed()
            mc.pub(t, 4, DENIED, tag, 1, extra=["--cert", t.certs.client("device2")[0],
                                                "--key", t.certs.client("device2")[1]])
            mc.pub(t, 4, "test/visible", tag, 1)
            rc, msgs, err = s.result()
            assert rc == 0, err
            assert [(m.topic, m.payload) for m in msgs] == [("test/visible", tag.encode())]
        else:
            raise AssertionError("unknown feature " + feature)
    finally:
        for s in subs:
            s.close()


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("version", sorted(VERSIONS), ids=[VERSIONS[v] for v in sorted(VERSIONS)])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", ["mosquitto", "moat"])
def test_cell(env, make, kind, client, version, feature):
    t = env[kind]
    tag = "%s-%s-%d-%s" % (kind, client, version,
                           "".join(ch for ch in feature if ch.isalnum()).lower())
    tag = tag.replace(".", "")
    key = (kind, client, VERSIONS[version], feature)
    try:
        if client == "libmosquitto":
            libmosquitto(feature, t, version, tag)
        else:
            if client == "MQTT.js" and env["hub"] is None:
                pytest.skip(js.missing_reason())
            interactive(feature, client, t, version, make, tag)
    except NotOffered as e:
        RESULTS[key] = "n/a: %s" % e
        pytest.skip(str(e))
    except BaseException:
        RESULTS[key] = "fail"
        raise
    RESULTS[key] = "pass"
