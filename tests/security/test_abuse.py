"""Resource and state abuse: topic aliases, oversized properties and packets, QoS 2 packet-id
exhaustion, packets before CONNECT, truncated packets, malformed CONNECT. Same three checks
as test_malformed: refused correctly, nothing forwarded, the gateway still serves."""

import struct
import time

import pytest

import mqtt_wire as w
from sec_util import (assert_not_forwarded, assert_still_serves, connected_wire,
                      expect_refused, protocol_errors, pub_body, raw_tls, unique,
                      wait_audit_protocol_error, wait_eof, wait_protocol_error)

V311, V5 = 4, 5
PUBLISH = 3
ALIAS = 0x23


def _alias_pub(topic, alias, payload=b"x"):
    props = bytes([ALIAS]) + struct.pack("!H", alias)
    return w.packet(PUBLISH, 0, pub_body(topic, payload, 0, 1, V5, props))


def _refused_after_connect(moat, broker, version, attack, reason, label, cid=None, setup=None):
    cid = cid or unique("abuser")
    before = protocol_errors(moat, label)
    c = connected_wire(moat, version, cid)
    try:
        if setup:
            setup(c)
        c.send(attack)
        expect_refused(c, version, reason)
    finally:
        c.close()
    wait_protocol_error(moat, before, label)
    wait_audit_protocol_error(moat, cid)
    return cid


# --- topic aliases (v5) ----------------------------------------------------------------------

def test_alias_zero(moat, broker):
    m = unique("mark")
    cid = _refused_after_connect(moat, broker, V5, _alias_pub("sec/" + m, 0), 0x94,
                                 "topic_alias_invalid")
    assert_not_forwarded(broker, cid, m)
    assert_still_serves(moat, broker, V5)


def test_alias_above_maximum(moat, broker):
    m = unique("mark")
    cid = _refused_after_connect(moat, broker, V5, _alias_pub("sec/" + m, 65535), 0x94,
                                 "topic_alias_invalid")
    assert_not_forwarded(broker, cid, m)
    assert_still_serves(moat, broker, V5)


def test_alias_when_the_broker_allows_none(moat_factory, broker_factory):
    """A broker whose CONNACK carries no Topic Alias Maximum allows no aliases: the gateway
    refuses one itself (0x94) instead of passing it to the broker."""
    b = broker_factory(extra="max_topic_alias 0\n")
    moat = moat_factory(broker_=b)
    m = unique("mark")
    cid = _refused_after_connect(moat, b, V5, _alias_pub("sec/" + m, 1), 0x94,
                                 "topic_alias_invalid")
    assert_not_forwarded(b, cid, m)
    assert_still_serves(moat, b, V5)


def test_alias_never_set(moat, broker):
    cid = _refused_after_connect(moat, broker, V5, _alias_pub("", 3), 0x82, "protocol_error")
    assert_not_forwarded(broker, cid)
    assert_still_serves(moat, broker, V5)


def test_alias_rebound_to_denied_topic_is_checked(moat_factory, broker):
    """An alias set on an allowed topic, re-bound to a denied one: the re-bound use is judged
    against the denied topic (resolved before every check)."""
    moat = moat_factory({"policy": {"roles": {"tester": {"publish": ["sec/ok/#"],
                                                         "subscribe": ["#"]}}}})
    cid = unique("alias")
    c = connected_wire(moat, V5, cid)
    try:
        ok, denied = "sec/ok/" + cid, "sec/denied/" + unique("mark")
        c.send(w.packet(PUBLISH, 2, pub_body(ok, b"1", 1, 1, V5,
                                             bytes([ALIAS]) + struct.pack("!H", 1))))
        assert c.expect(w.PUBACK).body[2:3] in (b"", b"\x00", b"\x10")
        c.send(w.packet(PUBLISH, 2, pub_body(denied, b"2", 1, 2, V5,
                                             bytes([ALIAS]) + struct.pack("!H", 1))))
        assert c.expect(w.PUBACK).body[2] == 0x87
        # The alias now means the denied topic: using it alone is denied too.
        c.send(w.packet(PUBLISH, 2, pub_body("", b"3", 1, 3, V5,
                                             bytes([ALIAS]) + struct.pack("!H", 1))))
        assert c.expect(w.PUBACK).body[2] == 0x87
    finally:
        c.close()
    assert_not_forwarded(broker, None, denied)
    log = broker.log()
    assert log.count("Received PUBLISH from %s " % cid) == 1, log[-2000:]


# --- oversized -------------------------------------------------------------------------------

def test_too_many_user_properties(moat_factory, broker):
    moat = moat_factory({"limits": {"max_user_properties": 8}})
    m = unique("mark")
    props = b"".join(b"\x26" + w.utf8("k%d" % i) + w.utf8("v") for i in range(9))
    attack = w.packet(PUBLISH, 0, pub_body("sec/" + m, b"x", 0, 1, V5, props))
    cid = _refused_after_connect(moat, broker, V5, attack, 0x83, "implementation_specific_error")
    assert_not_forwarded(broker, cid, m)
    assert_still_serves(moat, broker, V5)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_oversized_properties_and_packet(moat_factory, broker, version):
    """A packet over max_packet_size is refused from its fixed header: the gateway does not
    wait for (or buffer) the body."""
    moat = moat_factory({"limits": {"max_packet_size": "4KiB"}})
    m = unique("mark")
    big = b"\x26" + w.utf8("k") + w.utf8("v" * 20000)  # one 20 kB user property
    body = pub_body("sec/" + m, b"x", 0, 1, version, big if version == V5 else b"")
    if version != V5:
        body += b"v" * 20000
    attack = w.packet(PUBLISH, 0, body)
    # Only the header and a little of the body: the refusal must not need the rest.
    cid = _refused_after_connect(moat, broker, version, attack[:64], 0x95, "packet_too_large")
    assert_not_forwarded(broker, cid, m)
    assert_still_serves(moat, broker, version)


# --- QoS 2 packet-id exhaustion --------------------------------------------------------------

@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_qos2_packet_id_exhaustion(moat_factory, broker, version):
    """QoS 2 publishes that are never released hold packet ids; past max_inflight the client
    is disconnected (v5: 0x93 receive maximum exceeded) and the extra publish is not sent."""
    moat = moat_factory({"limits": {"max_inflight": 10}})
    cid = unique("qos2")
    m = unique("mark")
    before = protocol_errors(moat, "receive_maximum_exceeded")
    c = connected_wire(moat, version, cid)
    try:
        for i in range(1, 11):
            c.send(w.packet(PUBLISH, 4, pub_body("sec/q2/%d" % i, b"x", 2, i, version)))
            assert c.expect(w.PUBREC).body[:2] == struct.pack("!H", i)
        # Never PUBREL: ids 1..10 stay in flight. The eleventh is one too many.
        c.send(w.packet(PUBLISH, 4, pub_body("sec/" + m, b"x", 2, 11, version)))
        expect_refused(c, version, 0x93)
    finally:
        c.close()
    wait_protocol_error(moat, before, "receive_maximum_exceeded")
    assert_not_forwarded(broker, None, m)
    assert broker.log().count("Received PUBLISH from %s " % cid) == 10
    assert_still_serves(moat, broker, version)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_qos2_same_id_reuse_is_not_exhaustion(moat_factory, broker, version):
    """A completed QoS 2 flow frees its id: 3x max_inflight complete flows go through."""
    moat = moat_factory({"limits": {"max_inflight": 4}})
    cid = unique("qos2ok")
    c = connected_wire(moat, version, cid)
    try:
        for i in range(12):
            assert c.publish("sec/q2ok/%d" % i, b"x", qos=2, packet_id=(i % 4) + 1) < 0x80
    finally:
        c.close()
    broker.wait_log(r"Received PUBLISH from %s .*'sec/q2ok/11'" % cid)


# --- before CONNECT, truncation, malformed CONNECT -------------------------------------------

@pytest.mark.parametrize("first", ["publish", "subscribe", "pingreq", "connack"])
def test_packet_before_connect(moat, broker, first):
    before = protocol_errors(moat, "protocol_error")
    packets = {
        "publish": w.publish_packet("sec/early", b"x"),
        "subscribe": w.subscribe_packet([("sec/#", 0)]),
        "pingreq": w.packet(12, 0, b""),
        "connack": w.packet(2, 0, b"\x00\x00"),
    }
    s = raw_tls(moat)
    try:
        s.sendall(packets[first] + w.connect_packet(unique("after-early")))
        assert wait_eof(s, 5), "gateway kept a connection whose first packet was not CONNECT"
    finally:
        s.close()
    wait_protocol_error(moat, before, "protocol_error")
    assert broker.connection_count() == 0, broker.log()
    assert_still_serves(moat, broker)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_truncated_packets_then_eof(moat, broker, version):
    """A packet cut short and the connection closed: the partial packet is never forwarded."""
    # Truncated CONNECT: no broker connection at all.
    s = raw_tls(moat)
    s.sendall(w.connect_packet(unique("trunc"), version=version)[:-3])
    s.close()
    # Truncated PUBLISH after a good CONNECT.
    cid = unique("trunc")
    m = unique("mark")
    c = connected_wire(moat, version, cid)
    pkt = w.packet(PUBLISH, 2, pub_body("sec/" + m, b"payload" * 10, 1, 1, version))
    c.send(pkt[:len(pkt) - 1])
    c.close()
    time.sleep(0.3)
    assert_not_forwarded(broker, cid, m)
    assert broker.connection_count() == 1  # only the good CONNECT
    assert_still_serves(moat, broker, version)


@pytest.mark.parametrize("case", ["reserved_flag", "will_qos3", "password_no_user",
                                  "bad_utf8_client_id", "wildcard_will", "trailing_bytes",
                                  "overlong_length"])
def test_malformed_connect_never_reaches_broker(moat, broker, case):
    def connect_body(flags=0x02, cid=b"c", tail=b""):
        return w.utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + w.utf8(cid) + tail
    bodies = {
        "reserved_flag": connect_body(0x03),
        "will_qos3": connect_body(0x1E, tail=w.utf8("t") + w.utf8("p")),
        "password_no_user": connect_body(0x42, tail=w.utf8("pw")),
        "bad_utf8_client_id": connect_body(cid=b"\xed\xa0\x80"),
        "wildcard_will": connect_body(0x06, tail=w.utf8("a/#") + w.utf8("p")),
        "trailing_bytes": connect_body(tail=b"\x00"),
    }
    data = (b"\x10\x80\x00" if case == "overlong_length"
            else w.packet(1, 0, bodies[case]))
    before = protocol_errors(moat)
    s = raw_tls(moat)
    try:
        s.sendall(data)
        assert wait_eof(s, 5)
    finally:
        s.close()
    wait_protocol_error(moat, before)
    assert broker.connection_count() == 0, broker.log()
    assert_still_serves(moat, broker)


def test_v5_malformed_connect_gets_connack_reason(moat, broker):
    """v5: a malformed CONNECT is answered with CONNACK carrying the reason (not DISCONNECT)."""
    body = (w.utf8("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) +
            b"\x05\x11\x00\x00\x00\x01\x11" + w.utf8("c"))  # duplicate session expiry, cut
    c = moat.wire(version=5)
    try:
        c.send(w.packet(1, 0, body))
        p = c.read_packet()
        assert p.type == w.CONNACK and p.body[1] in (0x81, 0x82), p
        assert c.wait_closed() is None
    finally:
        c.close()
    assert broker.connection_count() == 0
