"""Per-role retain and QoS rights (CONTRACT §2 roles `retain:` / `max_qos:`, §3): retained
PUBLISH outside the retain rights denied and never stored, v5 CONNACK Maximum QoS / Retain
Available, DISCONNECT 0x9A / 0x9B, v3 denied publishes, SUBSCRIBE lowered to max_qos, wills
refused at CONNECT, and the union over an identity's roles. Real Mosquitto, real TLS."""

import struct

import pytest

import moat_harness as h
import mqtt_wire as w
from moat_harness import V311, V5, connected

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
MAXIMUM_QOS, RETAIN_AVAILABLE = 0x24, 0x25

POLICY = {"policy": {
    "default_roles": ["reader"],
    "roles": {
        # device1: retain only on its status topics, QoS at most 1.
        "sensor": {"publish": ["s/#"], "subscribe": ["s/#"], "retain": ["s/+/status"],
                   "max_qos": 1},
        # device2: no retain anywhere, QoS 0.
        "noretain": {"publish": ["n/#"], "subscribe": ["n/#"], "retain": [], "max_qos": 0},
        # Says nothing: retain wherever it publishes, QoS 2 (today's behaviour).
        "logger": {"publish": ["l/#"], "subscribe": ["l/#"]},
        "reader": {"subscribe": ["#"]},
    },
    # operator1 (CN ops-console): two roles, the union of their rights.
    "users": {"device1": ["sensor"], "device2": ["noretain"], "ops-console": ["sensor", "logger"]},
}}


@pytest.fixture
def rmoat(moat_factory):
    return moat_factory(POLICY)


def connack_props(client, client_id, **kw):
    """Sends a v5 CONNECT; returns (reason, {property id: value}) of the CONNACK."""
    client.pending_publishes = []
    client.send(w.connect_packet(client_id, version=5, **kw))
    ack = client.read_packet()
    assert ack.type == w.CONNACK
    props = {}
    plen, off = w.decode_varint(ack.body, 2) if len(ack.body) > 2 else (0, 2)
    end = off + plen
    while off < end:
        pid = ack.body[off]
        off += 1
        if pid in (MAXIMUM_QOS, RETAIN_AVAILABLE, 0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17,
                   0x19):
            props[pid] = ack.body[off]
            off += 1
        elif pid in (0x21, 0x22, 0x13):
            props[pid] = struct.unpack("!H", ack.body[off:off + 2])[0]
            off += 2
        elif pid in (0x11, 0x27):
            props[pid] = struct.unpack("!I", ack.body[off:off + 4])[0]
            off += 4
        elif pid == 0x26:
            for _ in range(2):
                n = struct.unpack("!H", ack.body[off:off + 2])[0]
                off += 2 + n
        else:
            n = struct.unpack("!H", ack.body[off:off + 2])[0]
            props[pid] = ack.body[off + 2:off + 2 + n]
            off += 2 + n
    return ack.body[1], props


def retained_any(wires, moat, topic_filter):
    r = wires(moat, cert="device3", version=V311)
    assert r.connect("retained-any-%d" % id(r)) == 0
    assert r.subscribe([(topic_filter, 0)]) == [0]
    got = r.publishes(0.5)
    r.close()
    return got


@VERSIONS
def test_retained_publish_outside_retain_rights_is_denied_and_not_stored(rmoat, wires,
                                                                         version):
    dev = wires(rmoat, cert="device1", version=version)
    assert dev.connect("sensor-%d" % version) == 0
    denied = 0x87 if version == V5 else 0
    assert dev.publish("s/a/data", b"sticky", qos=1, packet_id=1, retain=True) == denied
    # Allowed (v5: 0x10 "no matching subscribers" is a success code too).
    assert dev.publish("s/a/status", b"online", qos=1, packet_id=2, retain=True) < 0x80
    assert dev.publish("s/a/data", b"plain", qos=1, packet_id=3) < 0x80  # not retained
    got = retained_any(wires, rmoat, "s/#")
    assert ("s/a/status", b"online") in got
    assert all(t != "s/a/data" for t, _ in got), got
    ev = rmoat.wait_audit(lambda e: e.get("event") == "authz_denied"
                          and e.get("topic") == "s/a/data")[0]
    assert ev["action"] == "publish" and ev["rule"] == "retain"
    assert rmoat.metric("moat_authz_denied_total", action="publish") >= 1


def test_v5_connack_announces_maximum_qos_and_retain_available(rmoat, wires):
    d1 = wires(rmoat, cert="device1", version=V5)
    code, props = connack_props(d1, "ann-d1")
    assert code == 0 and props.get(MAXIMUM_QOS) == 1 and RETAIN_AVAILABLE not in props
    d2 = wires(rmoat, cert="device2", version=V5)
    code, props = connack_props(d2, "ann-d2")
    assert code == 0 and props.get(MAXIMUM_QOS) == 0 and props.get(RETAIN_AVAILABLE) == 0
    # Two roles: the highest max_qos (logger's absent = 2), retain available.
    op = wires(rmoat, cert="operator1", version=V5)
    code, props = connack_props(op, "ann-op")
    assert code == 0 and MAXIMUM_QOS not in props and RETAIN_AVAILABLE not in props
    # A role that never mentions retain / QoS: the broker's CONNACK as it was.
    rd = wires(rmoat, cert="device3", version=V5)
    code, props = connack_props(rd, "ann-rd")
    assert code == 0 and MAXIMUM_QOS not in props and RETAIN_AVAILABLE not in props


def test_v5_retained_publish_after_retain_available_0_is_disconnect_0x9a(rmoat, wires):
    d2 = wires(rmoat, cert="device2", version=V5)
    assert d2.connect("d2-retain") == 0
    d2.send(w.publish_packet("n/x", b"r", 0, retain=True, version=5))
    assert d2.wait_closed() == 0x9A
    assert retained_any(wires, rmoat, "n/#") == []


def test_v5_publish_above_max_qos_is_disconnect_0x9b(rmoat, wires):
    d1 = wires(rmoat, cert="device1", version=V5)
    assert d1.connect("d1-qos") == 0
    d1.send(w.publish_packet("s/a/t", b"q2", 2, packet_id=5, version=5))
    assert d1.wait_closed() == 0x9B


def test_v3_publish_above_max_qos_is_a_denied_publish(rmoat, wires):
    reader = wires(rmoat, cert="device3", version=V311)
    assert reader.connect("v3-qos-reader") == 0
    assert reader.subscribe([("s/#", 0)]) == [0]
    d1 = wires(rmoat, cert="device1", version=V311)
    assert d1.connect("d1-v3-qos") == 0
    assert d1.publish("s/a/t", b"too-high", qos=2, packet_id=5) == 0  # success code on v3
    assert d1.publish("s/a/t", b"ok", qos=1, packet_id=6) == 0
    got = reader.publishes(0.5)
    assert ("s/a/t", b"ok") in got and ("s/a/t", b"too-high") not in got
    ev = rmoat.wait_audit(lambda e: e.get("event") == "authz_denied"
                          and e.get("rule") == "max_qos 1")[0]
    assert ev["identity"] == "device1"


@VERSIONS
def test_subscribe_above_max_qos_is_granted_at_max_qos(rmoat, wires, clients, version):
    d1 = wires(rmoat, cert="device1", version=version)
    assert d1.connect("d1-sub-%d" % version) == 0
    assert d1.subscribe([("s/q/#", 2), ("s/r/#", 0)]) == [1, 0]
    d2 = wires(rmoat, cert="device2", version=version)
    assert d2.connect("d2-sub-%d" % version) == 0
    assert d2.subscribe([("n/#", 1)]) == [0]
    # Deliveries follow the granted QoS (the broker was asked for no more).
    op = connected(clients, rmoat, cert="operator1", client_id="sub-op-%d" % version)
    op.publish("s/q/x", b"hi", qos=2)
    p = d1.expect(w.PUBLISH)
    assert (p.flags >> 1) & 3 == 1


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
@pytest.mark.parametrize("cert,will,v5code", [
    ("device1", {"topic": "s/a/status", "payload": b"gone", "qos": 2}, 0x9B),
    ("device1", {"topic": "s/a/data", "payload": b"gone", "retain": True}, 0x9A),
    ("device2", {"topic": "n/x", "payload": b"gone", "qos": 1}, 0x9B),
    ("device2", {"topic": "n/x", "payload": b"gone", "retain": True}, 0x9A),
], ids=["qos", "retain", "qos0-role", "no-retain-role"])
def test_will_beyond_the_rights_is_refused_at_connect(rmoat, broker, wires, version, cert,
                                                      will, v5code):
    c = wires(rmoat, cert=cert, version=version)
    cid = "will-%s-%d-%d" % (cert, version, v5code)
    assert c.connect(cid, will=will) == (v5code if version == V5 else 0x05)
    assert ("as %s " % cid) not in broker.log()
    ev = rmoat.wait_audit(lambda e: e.get("event") == "authz_denied"
                          and e.get("action") == "will" and e.get("client_id") == cid)[0]
    assert ev["rule"] in ("retain", "max_qos 0", "max_qos 1")


@VERSIONS
def test_will_within_the_rights_is_accepted_and_published(rmoat, wires, version):
    c = wires(rmoat, cert="device1", version=version)
    will = {"topic": "s/a/status", "payload": b"offline", "qos": 1, "retain": True}
    assert c.connect("will-ok-%d" % version, will=will) == 0
    c.abort()  # no DISCONNECT: the broker publishes the will (retained, allowed)
    h.wait_until(lambda: ("s/a/status", b"offline") in retained_any(wires, rmoat, "s/a/status"),
                 10, message="retained will")


@VERSIONS
def test_multi_role_identity_gets_the_union(rmoat, wires, version):
    op = wires(rmoat, cert="operator1", version=version)
    assert op.connect("union-%d" % version) == 0
    denied = 0x87 if version == V5 else 0
    # logger has no retain key: retain wherever logger publishes.
    assert op.publish("l/x", b"kept", qos=1, packet_id=1, retain=True) < 0x80
    # sensor's retain list covers only s/+/status; logger does not publish s/...
    assert op.publish("s/b/data", b"no", qos=1, packet_id=2, retain=True) == denied
    assert op.publish("s/b/status", b"yes", qos=1, packet_id=3, retain=True) < 0x80
    # max_qos: the highest of the roles (logger: 2), also on sensor's topics.
    assert op.publish("s/b/t", b"q2", qos=2, packet_id=4) < 0x80
    got = retained_any(wires, rmoat, "#")
    assert ("l/x", b"kept") in got and ("s/b/status", b"yes") in got
    assert all(t != "s/b/data" for t, _ in got)
