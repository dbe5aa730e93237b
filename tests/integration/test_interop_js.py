"""Interoperability matrix, Node.js side: MQTT.js (npm `mqtt`) as a client through the real
gateway to Mosquitto, and aedes (npm `aedes`) as a second backend broker behind the gateway,
driven by MQTT.js and paho. Mosquitto clients and paho against Mosquitto are covered by
test_core.py and the other suites."""

import os

import pytest

import js_harness as js
import moat_harness as h
import mqtt_wire
from moat_harness import V311, V5, connected

pytestmark = pytest.mark.skipif(js.missing_reason() is not None,
                                reason=js.missing_reason() or "")

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])

# Room for a 256 KiB payload plus its header (the default limit is exactly 256 KiB).
BIG_PACKETS = {"limits": {"max_packet_size": "1MiB"}}

# device1 / device2 (default role) may use ok/#; ops-console (operator1) sees everything.
SPLIT_POLICY = {"policy": {
    "default_roles": ["device"],
    "roles": {"device": {"publish": ["ok/#"], "subscribe": ["ok/#"]},
              "operator": {"publish": ["#"], "subscribe": ["#"]}},
    "users": {"ops-console": ["operator"]},
}}

NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def js_hub(tmp_path_factory):
    """One node process for the whole file: MQTT.js clients and aedes brokers live in it."""
    hub = js.Hub(str(tmp_path_factory.mktemp("hub")))
    yield hub
    hub.close()


@pytest.fixture
def jsclients(js_hub):
    """jsclients(moat, version=, cert=, **connect options) -> MqttJs; closed at teardown."""
    made = []

    def make(moat_, **kw):
        c = js.MqttJs(js_hub, moat_, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
    # An exception in the hub (outside any client's callbacks) is a bug worth failing on.
    errors = js_hub.log(None).events()
    assert not errors, "node hub: %r" % errors


def js_connected(jsclients, moat, **kw):
    c = jsclients(moat, **kw)
    e = c.connect()
    assert e["event"] == "connect" and e["reasonCode"] == 0, "MQTT.js: %r; moat stderr:\n%s" % (
        e, moat.stderr())
    return c


@pytest.fixture
def aedes(js_hub):
    a = js.Aedes(js_hub)
    yield a
    a.stop()


@pytest.fixture
def aedes_moat(moat_factory, aedes):
    """The gateway with backend.address pointing at aedes instead of Mosquitto."""
    return moat_factory(BIG_PACKETS, broker_=aedes)


def assert_delivered(sub, expected):
    """expected: [(topic, payload, qos)] with distinct topics; every byte and the QoS must
    match. Arrival order is not compared: MQTT.js hands a QoS 2 message over at PUBREL, so a
    QoS 1 message published after it may legitimately be seen first."""
    got = {}
    for _ in expected:
        m = sub.message(15)
        assert m["topic"] not in got, "%s delivered twice" % m["topic"]
        got[m["topic"]] = m
    for topic, payload, qos in expected:
        m = got.get(topic)
        assert m is not None, "%s not delivered (got %s)" % (topic, sorted(got))
        assert m["payload"] == payload, "%s: %d bytes received, %d sent" % (
            topic, len(m["payload"]), len(payload))
        assert m["qos"] == qos, "%s delivered at QoS %d" % (topic, m["qos"])


# Binary content that text-minded code paths would mangle: NUL, 0xFF, invalid UTF-8, CR/LF.
BINARY = bytes(range(256)) + b"\x00\xff\xc3\x28\r\n\x00"


def mixed_messages(prefix):
    return [
        ("%s/q0" % prefix, b"plain text", 0),
        ("%s/q1-binary" % prefix, BINARY, 1),
        ("%s/q2-empty" % prefix, b"", 2),
        ("%s/q1-256KiB" % prefix, os.urandom(256 * 1024), 1),
        ("%s/q2-binary" % prefix, BINARY[::-1], 2),
    ]


# ---------------------------------------------------------------------------------------------
# MQTT.js through the gateway to Mosquitto

@VERSIONS
def test_mqttjs_pubsub_byte_exact(moat_factory, jsclients, version):
    moat = moat_factory(BIG_PACKETS)
    sub = js_connected(jsclients, moat, version=version)
    assert sub.subscribe({"js/#": 2}) == [2]
    pub = js_connected(jsclients, moat, version=version, cert="device2")
    messages = mixed_messages("js")
    for topic, payload, qos in messages:
        e = pub.publish(topic, payload, qos)
        assert e["error"] is None, e
    assert_delivered(sub, messages)


def test_mqttjs_v5_properties_round_trip(moat, jsclients):
    sub = js_connected(jsclients, moat, version=V5)
    assert sub.subscribe({"props/#": 1}) == [1]
    pub = js_connected(jsclients, moat, version=V5, cert="device2")
    props = {"payloadFormatIndicator": True, "contentType": "application/json",
             "responseTopic": "props/reply", "correlationData": js.b64(b"\x00\x01corr\xff"),
             "userProperties": {"k1": "v1", "unicode": "h\u00e9\u4e16"}}
    assert pub.publish("props/t", b'{"a":1}', 1, properties=props)["error"] is None
    m = sub.message()
    assert m["payload"] == b'{"a":1}'
    got = m["properties"]
    for k in ("payloadFormatIndicator", "contentType", "responseTopic", "correlationData",
              "userProperties"):
        assert got.get(k) == props[k], "property %s: sent %r, received %r" % (k, props[k],
                                                                             got.get(k))


@VERSIONS
def test_mqttjs_denied_subscribe_and_publish(moat_factory, broker, jsclients, version):
    moat = moat_factory(SPLIT_POLICY)
    watcher = js_connected(jsclients, moat, version=version, cert="operator1")
    assert watcher.subscribe({"#": 2}) == [2]
    dev = js_connected(jsclients, moat, version=version)

    # One SUBSCRIBE, the denied filter in the middle: one SUBACK, entries in the client's order.
    denied_entry = NOT_AUTHORIZED if version == V5 else 0x80
    assert dev.subscribe({"ok/a": 1, "secret/#": 1, "ok/b": 2}) == [1, denied_entry, 2]

    # Denied publishes are dropped; QoS 1/2 are acknowledged (0x87 on v5, success on v3.1.1)
    # so MQTT.js completes the flow and keeps the connection.
    for qos in (0, 1, 2):
        e = dev.publish("secret/%d" % qos, b"leak", qos)
        if version == V5 and qos:
            assert e["reasonCode"] == NOT_AUTHORIZED and e["error"], e
        else:
            assert e["error"] is None, e
    assert dev.publish("ok/a", b"after", 1)["error"] is None
    # The watcher may see every topic: the allowed publish is the first thing it gets.
    assert_delivered(watcher, [("ok/a", b"after", 1)])
    # ... and the device's own allowed subscription works on the same connection.
    assert_delivered(dev, [("ok/a", b"after", 1)])
    watcher.no_message()
    assert "'secret/" not in broker.log(), "a denied PUBLISH reached the broker"
    assert moat.metric("moat_authz_denied_total", action="publish") == 3
    assert moat.metric("moat_authz_denied_total", action="subscribe") == 1
    assert not dev.events("close"), "the device was disconnected"


@VERSIONS
def test_mqttjs_reconnects_after_broker_restart(moat, broker, clients, jsclients, version):
    sub = js_connected(jsclients, moat, version=version, reconnectPeriod=200)
    assert sub.subscribe({"rc/t": 1}) == [1]
    broker.restart()
    # The gateway closes the client when the broker goes; MQTT.js reconnects on its own
    # (attempts while the broker is down are refused) and resubscribes.
    sub.wait_event(lambda e: e["event"] == "close", 10, "the client to be closed")
    sub.wait_event(lambda e: e["event"] == "connect" and e["reasonCode"] == 0, 20,
                   "MQTT.js to reconnect")
    broker.wait_log(r"Received SUBSCRIBE from %s" % sub.client_id)
    pub = connected(clients, moat, version=version, cert="device2")
    pub.publish("rc/t", b"again", qos=1)
    assert_delivered(sub, [("rc/t", b"again", 1)])


def test_mqttjs_v5_topic_aliases_resolved_before_checks(moat_factory, broker, jsclients):
    moat = moat_factory(SPLIT_POLICY)
    watcher = js_connected(jsclients, moat, version=V5, cert="operator1")
    assert watcher.subscribe({"#": 1}) == [1]
    # MQTT.js assigns an alias per topic (Mosquitto's CONNACK allows 10) and sends later
    # PUBLISHes on that topic with an empty topic name.
    dev = js_connected(jsclients, moat, version=V5, trace=True,
                       options={"autoAssignTopicAlias": True})
    for i in range(3):
        assert dev.publish("ok/alias", b"%d" % i, 1)["error"] is None
        assert dev.publish("secret/alias", b"leak", 1)["reasonCode"] == NOT_AUTHORIZED
    sent = [(e["topic"], e["topicAlias"]) for e in dev.events("packet") if e["dir"] == "out"]
    ok_alias, secret_alias = sent[0][1], sent[1][1]
    assert ok_alias and secret_alias and ok_alias != secret_alias, sent
    assert sent[2:] == [("", ok_alias), ("", secret_alias)] * 2, sent
    # Alias-only publishes were resolved: the allowed ones delivered with their topic, the
    # denied ones (alias registration included) never reached the broker.
    for i in range(3):
        m = watcher.message()
        assert (m["topic"], m["payload"]) == ("ok/alias", b"%d" % i)
    watcher.no_message()
    assert "'secret/" not in broker.log()
    assert moat.metric("moat_authz_denied_total", action="publish") == 3


def test_mqttjs_v5_subscription_options_and_identifier(moat, jsclients):
    # SUBSCRIBE options and the Subscription Identifier go to the broker unchanged, and the
    # broker's deliveries carry the identifier back through the gateway.
    c = js_connected(jsclients, moat, version=V5)
    assert c.subscribe({"so/local": {"qos": 1, "nl": True}},
                       properties={"subscriptionIdentifier": 7}) == [1]
    assert c.subscribe({"so/rap": {"qos": 1, "rap": True}},
                       properties={"subscriptionIdentifier": 9}) == [1]
    assert c.publish("so/local", b"mine", 1)["error"] is None  # no local: not echoed
    assert c.publish("so/rap", b"kept", 1, retain=True)["error"] is None
    m = c.message()
    assert (m["topic"], m["payload"], m["retain"]) == ("so/rap", b"kept", True)
    assert m["properties"]["subscriptionIdentifier"] == 9
    other = js_connected(jsclients, moat, version=V5, cert="device2")
    assert other.publish("so/local", b"theirs", 1)["error"] is None
    m = c.message()
    assert (m["topic"], m["payload"]) == ("so/local", b"theirs")
    assert m["properties"]["subscriptionIdentifier"] == 7


@VERSIONS
def test_mqttjs_persistent_session_through_gateway(moat, clients, jsclients, version):
    session = {"clean": False}
    if version == V5:
        session["properties"] = {"sessionExpiryInterval": 300}
    sub = js_connected(jsclients, moat, version=version, client_id="js-persist-%d" % version,
                       **session)
    assert sub.subscribe({"ps/t": 1}) == [1]
    sub.end()
    pub = connected(clients, moat, version=version, cert="device2")
    for i in range(3):
        pub.publish("ps/t", b"queued-%d" % i, qos=1)
    again = jsclients(moat, version=version, client_id="js-persist-%d" % version, **session)
    e = again.connect()
    assert e["event"] == "connect" and e["sessionPresent"] is True, e
    for i in range(3):
        m = again.message()
        assert (m["topic"], m["payload"], m["qos"]) == ("ps/t", b"queued-%d" % i, 1)


def test_mqttjs_v5_told_server_shutting_down(moat, jsclients):
    v5 = js_connected(jsclients, moat, version=V5)
    v311 = js_connected(jsclients, moat, version=V311, cert="device2")
    moat.stop()
    e = v5.wait_event(lambda e: e["event"] in ("disconnect", "close"), 10, "DISCONNECT")
    assert (e["event"], e.get("reasonCode")) == ("disconnect", 0x8B), e
    v311.wait_event(lambda e: e["event"] == "close", 10, "the v3.1.1 client to be closed")


def test_mqttjs_qos1_burst_no_stall(moat, jsclients):
    sub = js_connected(jsclients, moat, version=V5)
    assert sub.subscribe({"burst/js": 1}) == [1]
    pub = js_connected(jsclients, moat, version=V311, cert="device2")
    n = 2000
    done = pub.burst("burst/js", n, qos=1, timeout=60)
    assert (done["acked"], done["errors"]) == (n, 0)
    # Bounded by progress, not speed: each message must come within 15 s of the previous one.
    got = [int(sub.message(15)["payload"]) for _ in range(n)]
    assert got == list(range(n))


# ---------------------------------------------------------------------------------------------
# aedes as the backend broker

def test_aedes_backend_mqttjs_pubsub(aedes_moat, aedes, jsclients):
    sub = js_connected(jsclients, aedes_moat)
    assert sub.subscribe({"ae/#": 2}) == [2]
    pub = js_connected(jsclients, aedes_moat, cert="device2")
    messages = mixed_messages("ae")
    for topic, payload, qos in messages:
        assert pub.publish(topic, payload, qos)["error"] is None
    assert_delivered(sub, messages)
    # The broker saw the gateway's identity as username (backend.credentials: identity) and
    # the client's own client id.
    # (aedes' events travel through the hub's log stream: wait, do not race it.)
    aedes.log.wait(lambda e: e["event"] == "client" and e["id"] == sub.client_id, 10,
                   "aedes to report the client")


@pytest.mark.parametrize("version", [3, V311], ids=["v31", "v311"])
def test_aedes_backend_paho_pubsub_and_denied_filter(moat_factory, aedes, clients, version):
    moat = moat_factory(SPLIT_POLICY, broker_=aedes)
    sub = connected(clients, moat, version=version)
    # The gateway removes the denied filter before aedes sees the SUBSCRIBE and merges aedes'
    # SUBACK back into the client's order.
    assert sub.subscribe([("ok/p/#", 2), ("secret/#", 1), ("ok/q", 1)]) == [2, 0x80, 1]
    seen = aedes.log.wait(lambda e: e["event"] == "subscribe", 10, "aedes to see the SUBSCRIBE")
    assert [t for t, _ in seen["topics"]] == ["ok/p/#", "ok/q"]
    pub = connected(clients, moat, version=version, cert="device2")
    for qos in (0, 1, 2):
        pub.publish("ok/p/%d" % qos, BINARY + bytes([qos]), qos=qos)
    pub.publish("secret/x", b"leak", qos=1)
    pub.publish("ok/q", b"last", qos=1)
    for qos in (0, 1, 2):
        m = sub.get()
        assert m is not None, "QoS %d message not delivered" % qos
        assert (m.topic, m.payload, m.qos) == ("ok/p/%d" % qos, BINARY + bytes([qos]), qos)
    m = sub.get()
    assert (m.topic, m.payload) == ("ok/q", b"last")
    assert "secret/x" not in [e["topic"] for e in aedes.events("publish")]


@pytest.mark.parametrize("qos", [1, 2])
def test_aedes_backend_mosquitto_clients(aedes_moat, aedes, subs, qos):
    sub = subs(aedes_moat, "mc/t", 2, qos=qos)
    h.wait_until(lambda: any(e["id"] == sub.client_id for e in aedes.events("subscribe")), 10,
                 message="aedes to see mosquitto_sub's SUBSCRIBE")
    for text in ("one", "two"):
        r = h.mosquitto_pub(aedes_moat, "mc/t", text, qos=qos, cert="device2")
        assert r.returncode == 0, r.stderr
    rc, out, err = sub.result()
    assert rc == 0, err
    assert out == b"one\ntwo\n"


def test_aedes_backend_retained_message(aedes_moat, clients, jsclients):
    pub = js_connected(jsclients, aedes_moat, cert="device2")
    assert pub.publish("ret/x", b"kept\x00", 1, retain=True)["error"] is None
    # Both clients, subscribing after the fact, get the retained copy with the retain flag.
    sub = js_connected(jsclients, aedes_moat)
    assert sub.subscribe({"ret/#": 1}) == [1]
    m = sub.message()
    assert (m["topic"], m["payload"], m["retain"]) == ("ret/x", b"kept\x00", True)
    psub = connected(clients, aedes_moat)
    assert psub.subscribe("ret/#", qos=1) == [1]
    m = psub.get()
    assert m is not None and (m.topic, m.payload, m.retain) == ("ret/x", b"kept\x00", 1)


def test_aedes_backend_will_on_abrupt_disconnect(aedes_moat, aedes, clients, jsclients):
    watcher = connected(clients, aedes_moat, cert="device2")
    assert watcher.subscribe("will/#", qos=1) == [1]
    dev = js_connected(jsclients, aedes_moat, keepalive=30,
                       will={"topic": "will/device1", "payload": js.b64(b"gone\xff"), "qos": 1,
                             "retain": False})
    dev.destroy()  # no DISCONNECT: the socket just closes; the gateway closes the backend
    m = watcher.get(15)
    assert m is not None, "will not delivered; moat stderr:\n%s" % aedes_moat.stderr()
    assert (m.topic, m.payload, m.qos) == ("will/device1", b"gone\xff", 1)


def test_aedes_backend_clean_disconnect_sends_no_will(aedes_moat, aedes, clients, jsclients):
    watcher = connected(clients, aedes_moat, cert="device2")
    assert watcher.subscribe("will/#", qos=1) == [1]
    dev = js_connected(jsclients, aedes_moat,
                       will={"topic": "will/device1", "payload": js.b64(b"gone"), "qos": 1})
    dev.end()
    h.wait_until(lambda: dev.client_id in [e["id"] for e in aedes.events("clientDisconnect")],
                 10, message="aedes to see the client go")
    watcher.expect_none(0.5)


def test_aedes_backend_qos1_burst(aedes_moat, jsclients):
    sub = js_connected(jsclients, aedes_moat)
    assert sub.subscribe({"burst/ae": 1}) == [1]
    pub = js_connected(jsclients, aedes_moat, cert="device2")
    n = 1000
    done = pub.burst("burst/ae", n, qos=1, timeout=60)
    assert (done["acked"], done["errors"]) == (n, 0)
    got = [int(sub.message(15)["payload"]) for _ in range(n)]
    assert got == list(range(n))


def test_aedes_backend_refuses_v5_cleanly(aedes_moat, aedes, clients, jsclients, wires):
    """aedes speaks MQTT 3.1/3.1.1 only: it answers a v5 CONNECT with the 3.1.1 refusal
    (CONNACK return code 1, unacceptable protocol version) and closes, as MQTT 3.1.1 §3.1.2.2
    requires. The gateway relays that refusal unchanged (v5 clients know it as the signal to
    fall back to 3.1.1), closes the client, and keeps serving everyone else."""
    w = wires(aedes_moat, version=V5)
    w.send(mqtt_wire.connect_packet("wire-v5", version=V5))
    ack = w.read_packet()
    assert (ack.type, ack.body) == (mqtt_wire.CONNACK, b"\x00\x01")
    assert w.wait_closed() is None
    aedes.log.wait(lambda e: e["event"] == "connackSent" and e["returnCode"] == 1, 10,
                   "aedes to report its refusal")

    # What the clients make of it: MQTT.js reports the refusal, paho and libmosquitto map it
    # to 0x84 (Unsupported Protocol Version); none sees a hang or a protocol error.
    js5 = jsclients(aedes_moat, version=V5)
    e = js5.connect()
    assert (e["event"], e.get("code")) == ("error", 1), e
    js5.wait_event(lambda e: e["event"] == "close", 10, "the refused connection to close")
    assert clients(aedes_moat, version=V5).connect() == 0x84
    r = h.mosquitto_pub(aedes_moat, "v5/t", "x", version=V5)
    assert r.returncode != 0 and b"Unsupported Protocol Version" in r.stderr, r

    # The gateway keeps serving 3.1.1 clients, and counted nothing as the client's fault.
    ok = js_connected(jsclients, aedes_moat)
    assert ok.subscribe({"after/v5": 0}) == [0]
    assert aedes_moat.metric("moat_protocol_errors_total") == 0
