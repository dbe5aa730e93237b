"""Drop-in for a real fleet (#20): every client that works against the bare broker works
through Moat. Where the behaviour is the broker's, each test runs first against Mosquitto's
own TLS listener (proving the test) and then through Moat (fleet_targets.py).

- keepalive 0 / 1200 of MQTT 3.x clients is served (CONTRACT §3 "Keepalive");
- `#` / `+/+` over a denied branch is granted and the branch withheld, QoS 1/2 flows and
  retained messages included (§3 "Subscriptions and denied branches");
- a scrape shows every event before it (§4)."""

import subprocess

import pytest

import fleet_targets as ft
import js_harness as js
import moat_harness as h
import mqtt_wire as w
from fleet_targets import DENIED

TARGETS = pytest.mark.parametrize("kind", ["mosquitto", "moat"])
PAHO_VERSIONS = pytest.mark.parametrize("version", [3, 4, 5], ids=["v31", "v311", "v5"])


@pytest.fixture
def target(request, broker_factory, broker, moat_factory, certs, tmp_path):
    """target(kind, overrides=None): Mosquitto's own TLS listener or Moat in front of one."""
    def make(kind, overrides=None):
        return ft.make_target(kind, broker_factory, broker, moat_factory, certs, tmp_path,
                              overrides)
    return make


@pytest.fixture
def pahos():
    made = []

    def make(target_, version, **kw):
        c = ft.Paho(target_, version, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.disconnect()


def connected(pahos, t, version, **kw):
    c = pahos(t, version, **kw)
    rc, _ = c.connect()
    assert rc == 0, "CONNACK %r; %s" % (rc, t.stderr())
    return c


def broker_saw_keepalive(t, client_id, keepalive):
    """The broker's 'New client connected ... as CID (pN, cN, kK, ...)' line."""
    t.broker.wait_log(r"as %s \(p\d, c\d, k%d\b" % (client_id, keepalive))


# ---------------------------------------------------------------------------------------------
# 1. keepalive 0 and long keepalives of MQTT 3.x devices

@TARGETS
@pytest.mark.parametrize("keepalive", [0, 1200], ids=["ka0", "ka1200"])
@pytest.mark.parametrize("version", [3, 4], ids=["v31", "v311"])
def test_paho_v3_keepalive_served(target, pahos, kind, version, keepalive):
    t = target(kind)
    dev = connected(pahos, t, version, keepalive=keepalive)
    # The broker sees the device's own keepalive: the CONNECT went on unchanged.
    broker_saw_keepalive(t, dev.client_id, keepalive)
    assert dev.subscribe("fleet/ka/#", 1) == [1]
    dev.publish("fleet/ka/x", b"alive", qos=1)
    got = dev.messages(1)
    assert [(m.topic, m.payload) for m in got] == [("fleet/ka/x", b"alive")]
    if kind == "moat":
        # Dead peers are reaped by TCP keepalive probes on Moat's client socket.
        on, out = ft.ss_keepalive_timer(t.port)
        assert on, "no TCP keepalive timer on Moat's client socket:\n" + out


@TARGETS
@pytest.mark.parametrize("keepalive", [0, 1200], ids=["ka0", "ka1200"])
def test_paho_v5_keepalive_served(target, pahos, kind, keepalive):
    t = target(kind)
    dev = connected(pahos, t, 5, keepalive=keepalive)
    assert dev.subscribe("fleet/ka5/#", 1) == [1]
    dev.publish("fleet/ka5/x", b"alive", qos=1)
    assert [(m.topic, m.payload) for m in dev.messages(1)] == [("fleet/ka5/x", b"alive")]


@TARGETS
@pytest.mark.parametrize("version", [3, 4], ids=["v31", "v311"])
def test_libmosquitto_long_keepalive_served(target, kind, version):
    t = target(kind)
    sub = ft.MosquittoClients.Sub(t, version, "fleet/mka/#", 1, keepalive=1200)
    try:
        sub.wait_subscribed()
        broker_saw_keepalive(t, sub.client_id, 1200)
        ft.MosquittoClients.pub(t, version, "fleet/mka/x", "alive", qos=1, keepalive=1200)
        rc, msgs, err = sub.result()
        assert rc == 0, err
        assert [(m.topic, m.payload) for m in msgs] == [("fleet/mka/x", b"alive")]
    finally:
        sub.close()


def test_v3_keepalive_refuse_keeps_the_refusal(target, pahos):
    t = target("moat", {"limits": {"v3_keepalive": "refuse"}})
    rc, _ = pahos(t, 4, keepalive=0).connect()
    assert rc == 2
    assert connected(pahos, t, 4, keepalive=60)


def test_v3_keepalive_zero_dead_peer_probes_configured(target, wires):
    """The probe parameters on Moat's socket: idle = max_keepalive (ss shows the timer
    counting down from it)."""
    t = target("moat", {"limits": {"max_keepalive": "120s"}})
    c = t.moat.wire(version=4)
    try:
        assert c.connect("ka-probe", keepalive=0) == 0
        on, out = ft.ss_keepalive_timer(t.port)
        assert on, out
        # timer:(keepalive,1min59sec,0) or similar: within max_keepalive.
        assert "keepalive,1min" in out or "keepalive,2min" in out, out
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# 2. a broad subscription over a denied branch

def publish_mix(pub):
    """Retained and live messages on and off the denied branch, every QoS."""
    pub.publish(DENIED, b"retained-denied", qos=1, retain=True)
    pub.publish("test/visible", b"retained-visible", qos=1, retain=True)


def live_mix(pub):
    for qos in (0, 1, 2):
        pub.publish(DENIED, b"denied-%d" % qos, qos=qos)
        pub.publish("test/visible", b"live-%d" % qos, qos=qos)


@TARGETS
@PAHO_VERSIONS
@pytest.mark.parametrize("filt", ["#", "+/+"])
def test_paho_broad_subscription_over_denied_branch(target, pahos, kind, version, filt):
    t = target(kind, {"anomaly": {"topic_scan_distinct": 1}})
    pub = connected(pahos, t, 4, cert="device2")
    publish_mix(pub)
    sub = connected(pahos, t, version)
    assert sub.subscribe(filt, 2) == [2]
    live_mix(pub)
    got = sorted((m.topic, m.payload) for m in sub.messages(4) + sub.quiet(0.5))
    assert got == [("test/visible", b"live-0"), ("test/visible", b"live-1"),
                   ("test/visible", b"live-2"), ("test/visible", b"retained-visible")]
    # The denied branch's QoS 1/2 flows were completed (the broker has nothing in flight for
    # the subscriber): a later message still arrives.
    pub.publish("test/visible", b"after", qos=2)
    assert [(m.topic, m.payload) for m in sub.messages(1)] == [("test/visible", b"after")]
    if kind == "moat":
        m = t.moat
        h.wait_until(lambda: m.metric("moat_authz_denied_total", action="deliver") >= 4, 5,
                     message="authz_denied{deliver} >= 4")
        ev = m.wait_audit(lambda e: e.get("event") == "authz_denied"
                          and e.get("action") == "deliver")[0]
        assert ev["topic"] == DENIED and "deny_subscribe[0]" in ev["rule"]
        # Withheld deliveries are the broker's traffic, not a client probing topics.
        assert m.metric("moat_anomalies_total", kind="topic_scan") == 0
        assert not [e for e in m.audit_events("anomaly")]


@TARGETS
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_libmosquitto_hash_over_denied_branch(target, pahos, kind, version):
    t = target(kind)
    pub = connected(pahos, t, 4, cert="device2")
    publish_mix(pub)
    sub = ft.MosquittoClients.Sub(t, version, "#", 4, qos=2)
    try:
        sub.wait_subscribed()
        live_mix(pub)
        rc, msgs, err = sub.result()
        assert rc == 0, err
        assert sorted((m.topic, m.payload, m.retain) for m in msgs) == [
            ("test/visible", b"live-0", False), ("test/visible", b"live-1", False),
            ("test/visible", b"live-2", False), ("test/visible", b"retained-visible", True)]
    finally:
        sub.close()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_filter_inside_denied_branch_still_refused(target, pahos, version):
    """Moat only: Mosquitto 2.0 grants such a filter and delivers nothing on it; Moat says
    so at once (CONTRACT §3)."""
    t = target("moat")
    sub = connected(pahos, t, version)
    assert sub.subscribe(DENIED, 1) == [0x80 if version == 4 else 0x87]


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_overlap_refused_for_shared_and_without_delivery_checks(target, pahos, version):
    refused = 0x80 if version == 4 else 0x87
    t = target("moat")
    c = connected(pahos, t, version)
    # A shared subscription cannot withhold for one member: the group would lose them.
    assert c.subscribe("$share/g/#", 1) == [refused]
    assert c.subscribe("$share/g/test/visible", 1) == [1]
    off = target("moat", {"policy": {"check_deliveries": False}})
    c2 = connected(pahos, off, version)
    assert c2.subscribe("#", 1) == [refused]
    assert c2.subscribe("test/visible", 1) == [1]


def test_mqttjs_hash_over_denied_branch(target, pahos, tmp_path):
    if js.missing_reason():
        pytest.skip(js.missing_reason())
    t = target("moat")
    hub = js.Hub(str(tmp_path))
    try:
        for version in (4, 5):
            c = js.MqttJs(hub, t.moat, version=version)
            assert c.connect()["event"] == "connect"
            assert [g if isinstance(g, int) else g.get("qos") for g in
                    c.subscribe({"#": 1})] == [1]
            pub = connected(pahos, t, 4, cert="device2")
            pub.publish(DENIED, b"no", qos=1)
            pub.publish("test/visible", b"yes-%d" % version, qos=1)
            m = c.message()
            assert (m["topic"], m["payload"]) == ("test/visible", b"yes-%d" % version)
            c.no_message(0.5)
            c.close()
    finally:
        hub.close()


def test_explain_shows_withheld_deliveries(target):
    t = target("moat")
    args = [h.moat_bin(), "explain", "-c", t.moat.config_path, "--identity", "device1",
            "subscribe"]
    r = subprocess.run(args + ["#"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "allow (role fleet subscribe[0])"
    assert lines[1] == "withheld at delivery: %s (role fleet deny_subscribe[0])" % DENIED
    r = subprocess.run(args + [DENIED], capture_output=True, text=True, timeout=10)
    assert r.returncode == 3 and "deny_subscribe[0]" in r.stdout
    r = subprocess.run(args + ["$share/g/#"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 3 and "deny_subscribe[0]" in r.stdout
    r = subprocess.run(args + ["other/#"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# 4. a scrape shows every event before it

def test_scrape_shows_packets_without_delay(target, wires):
    t = target("moat")
    m = t.moat
    before = m.metric("moat_packets_total", direction="client_to_broker", type="PUBLISH")
    before_out = m.metric("moat_packets_total", direction="broker_to_client", type="PUBACK")
    c = m.wire(version=4)
    try:
        assert c.connect("scrape-now") == 0
        # The PUBACK came back through Moat: both packets were counted before this scrape.
        assert c.publish("fleet/metrics", b"x", qos=1, packet_id=1) == 0
        assert m.metric("moat_packets_total", direction="client_to_broker",
                        type="PUBLISH") == before + 1
        assert m.metric("moat_packets_total", direction="broker_to_client",
                        type="PUBACK") == before_out + 1
    finally:
        c.close()


def test_scrape_after_mosquitto_pub_shows_its_publish(target):
    """A real client (mosquitto_pub, QoS 1: it exits after its PUBACK), then one scrape."""
    t = target("moat")
    m = t.moat
    before = m.metric("moat_packets_total", direction="client_to_broker", type="PUBLISH")
    ft.MosquittoClients.pub(t, 4, "fleet/metrics/pub", "x", qos=1)
    assert m.metric("moat_packets_total", direction="client_to_broker",
                    type="PUBLISH") == before + 1
