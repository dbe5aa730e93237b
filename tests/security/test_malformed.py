"""Malformed packets after CONNECT: every violation closes the connection with the spec's
reason code (v5: DISCONNECT first; v3.x: just closed), is counted in
moat_protocol_errors_total{reason} and audited, reaches the broker in no form, and leaves the
gateway serving well-behaved clients."""

import struct

import pytest

import mqtt_wire as w
from sec_util import (assert_not_forwarded, assert_still_serves, connected_wire,
                      expect_refused, protocol_errors, pub_body, unique,
                      wait_audit_protocol_error, wait_protocol_error)

V311, V5 = 4, 5
MALFORMED, PROTOCOL = 0x81, 0x82
TOPIC_NAME_INVALID, TOPIC_FILTER_INVALID, TOPIC_ALIAS_INVALID = 0x90, 0x8F, 0x94

PUBLISH, SUBSCRIBE, UNSUBSCRIBE = 3, 8, 10


def _name(code):
    return {0x81: "malformed_packet", 0x82: "protocol_error", 0x90: "topic_name_invalid",
            0x8F: "topic_filter_invalid", 0x94: "topic_alias_invalid",
            0x95: "packet_too_large", 0x83: "implementation_specific_error",
            0x93: "receive_maximum_exceeded", 0x99: "payload_format_invalid"}[code]


def run_attack(moat, broker, version, make_bytes, v5_reason):
    """Connects, sends the attack (built around a unique marker string), checks refusal,
    metric, audit, that nothing was forwarded, and that the gateway still serves."""
    cid = unique("attacker")
    marker = unique("mark")
    # v3 has no reason codes: the gateway labels the metric with the v5 reason anyway.
    before = protocol_errors(moat, _name(v5_reason))
    c = connected_wire(moat, version, cid)
    try:
        c.send(make_bytes(marker))
        expect_refused(c, version, v5_reason)
    finally:
        c.close()
    wait_protocol_error(moat, before, _name(v5_reason))
    wait_audit_protocol_error(moat, cid)
    assert_not_forwarded(broker, cid, marker)
    assert_still_serves(moat, broker, version)


def _pub(topic, version, payload=b"x", qos=0, props=b""):
    return w.packet(PUBLISH, qos << 1, pub_body(topic, payload, qos, 1, version, props))


VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])


@VERSIONS
@pytest.mark.parametrize("header", ["30FFFFFFFF01", "308000", "3080808000", "0000"],
                         ids=["five_length_bytes", "overlong_length", "overlong_4", "type0"])
def test_malformed_remaining_length(moat, broker, version, header):
    run_attack(moat, broker, version, lambda m: bytes.fromhex(header) + b"sec/" + m.encode(),
               MALFORMED)


@VERSIONS
def test_topic_length_past_packet_end(moat, broker, version):
    # Remaining length says 8, the topic length field says 200.
    def attack(m):
        body = struct.pack("!H", 200) + b"sec/" + m.encode()
        return w.packet(PUBLISH, 0, body[:8])
    run_attack(moat, broker, version, attack, MALFORMED)


@VERSIONS
def test_subscribe_filter_length_past_packet_end(moat, broker, version):
    def attack(m):
        body = struct.pack("!H", 1) + (b"\x00" if version == V5 else b"")
        body += struct.pack("!H", 300) + b"sec/" + m.encode()
        return w.packet(SUBSCRIBE, 2, body)
    run_attack(moat, broker, version, attack, MALFORMED)


@VERSIONS
@pytest.mark.parametrize("topic", ["sec/{m}/+", "sec/{m}/#", "sec/+/{m}"],
                         ids=["plus", "hash", "plus_mid"])
def test_wildcard_publish(moat, broker, version, topic):
    run_attack(moat, broker, version,
               lambda m: _pub(topic.format(m=m), version),
               TOPIC_NAME_INVALID if version == V5 else MALFORMED)


@VERSIONS
@pytest.mark.parametrize("bad", [b"\x00", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff"],
                         ids=["nul", "overlong", "surrogate", "ff"])
def test_bad_utf8_topic(moat, broker, version, bad):
    run_attack(moat, broker, version,
               lambda m: _pub(b"sec/" + m.encode() + b"/" + bad, version), MALFORMED)


@VERSIONS
def test_empty_topic_without_alias(moat, broker, version):
    run_attack(moat, broker, version, lambda m: _pub("", version, payload=m.encode()),
               PROTOCOL if version == V5 else MALFORMED)


@VERSIONS
@pytest.mark.parametrize("flags", [0x0, 0x3, 0xA], ids=["0000", "0011", "1010"])
def test_reserved_flags_subscribe(moat, broker, version, flags):
    def attack(m):
        body = struct.pack("!H", 1) + (b"\x00" if version == V5 else b"")
        return w.packet(SUBSCRIBE, flags, body + w.utf8("sec/" + m) + b"\x00")
    run_attack(moat, broker, version, attack, MALFORMED)


@VERSIONS
def test_qos3_publish(moat, broker, version):
    run_attack(moat, broker, version,
               lambda m: w.packet(PUBLISH, 0x06, pub_body("sec/" + m, b"x", 1, 1, version)),
               MALFORMED)


@VERSIONS
def test_publish_packet_id_zero(moat, broker, version):
    run_attack(moat, broker, version,
               lambda m: w.packet(PUBLISH, 0x02, pub_body("sec/" + m, b"x", 1, 0, version)),
               PROTOCOL)


@VERSIONS
@pytest.mark.parametrize("filt", ["sec/{m}/#/x", "sec/{m}+", "$share/g+/sec/{m}"],
                         ids=["hash_mid", "plus_in_level", "bad_share"])
def test_invalid_filter(moat, broker, version, filt):
    def attack(m):
        body = struct.pack("!H", 1) + (b"\x00" if version == V5 else b"")
        return w.packet(SUBSCRIBE, 2, body + w.utf8(filt.format(m=m)) + b"\x00")
    run_attack(moat, broker, version, attack,
               TOPIC_FILTER_INVALID if version == V5 else MALFORMED)


@VERSIONS
def test_second_connect(moat, broker, version):
    run_attack(moat, broker, version,
               lambda m: w.connect_packet("sec/" + m, version=version), PROTOCOL)


def test_v5_duplicate_property(moat, broker):
    props = b"\x02" + struct.pack("!I", 5) + b"\x02" + struct.pack("!I", 6)
    run_attack(moat, broker, V5, lambda m: _pub("sec/" + m, V5, props=props), PROTOCOL)


def test_v5_property_not_allowed_in_publish(moat, broker):
    props = b"\x11" + struct.pack("!I", 5)  # session expiry interval
    run_attack(moat, broker, V5, lambda m: _pub("sec/" + m, V5, props=props), PROTOCOL)


def test_v5_property_length_disagrees(moat, broker):
    def attack(m):
        body = w.utf8("sec/" + m) + w.varint(40) + b"\x23\x00\x01"
        return w.packet(PUBLISH, 0, body)
    run_attack(moat, broker, V5, attack, MALFORMED)


def test_v5_property_value_crosses_block(moat, broker):
    def attack(m):
        # Block of 2 bytes holding a 4-byte message expiry interval.
        body = w.utf8("sec/" + m) + b"\x02" + b"\x02\x00\x00\x00\x05" + b"payload"
        return w.packet(PUBLISH, 0, body)
    run_attack(moat, broker, V5, attack, MALFORMED)


@VERSIONS
@pytest.mark.parametrize("ptype,body", [(2, b"\x00\x00"), (9, b"\x00\x01\x00"), (13, b""),
                                        (11, b"\x00\x01")],
                         ids=["connack", "suback", "pingresp", "unsuback"])
def test_server_only_packet_from_client(moat, broker, version, ptype, body):
    def attack(m):
        b = body
        if version == V5 and ptype in (2, 9, 11):
            b = body[:2] + b"\x00" + body[2:] if ptype != 2 else body + b"\x00"
            if ptype == 11:
                b += b"\x00"
        return w.packet(ptype, 0, b) + _pub("sec/" + m, version)
    run_attack(moat, broker, version, attack, PROTOCOL)


def test_v5_auth_without_method(moat, broker):
    run_attack(moat, broker, V5,
               lambda m: w.packet(15, 0, b"\x18\x00") + _pub("sec/" + m, V5), PROTOCOL)


def test_v311_auth_is_reserved(moat, broker):
    run_attack(moat, broker, V311,
               lambda m: w.packet(15, 0, b"") + _pub("sec/" + m, V311), MALFORMED)


def test_v5_subscription_identifier_from_client(moat, broker):
    props = b"\x0b\x05"
    run_attack(moat, broker, V5, lambda m: _pub("sec/" + m, V5, props=props), PROTOCOL)


def test_v5_disconnect_raising_session_expiry(moat, broker):
    """MQTT-3.14.2-2: after a CONNECT without Session Expiry, a DISCONNECT may not set one;
    the gateway refuses it itself instead of passing the violation to the broker."""
    disconnect = bytes.fromhex("e007" "00" "05" "1100000010")
    run_attack(moat, broker, V5, lambda m: disconnect, PROTOCOL)


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"ok\xc3\x28", b"\xed\xa0\x80", b"a\x00b"],
                         ids=["invalid_bytes", "bad_continuation", "surrogate", "nul"])
def test_v5_payload_format_utf8_not_utf8(moat, broker, payload):
    """Payload Format Indicator 1 promises UTF-8: a payload that is not is refused with 0x99
    (MQTT 5 §3.3.2.3.2; U+0000 too, as Mosquitto's own check does) and never reaches
    subscribers that trust the flag."""
    run_attack(moat, broker, V5, lambda m: _pub("sec/" + m, V5, payload, props=b"\x01\x01"),
               0x99)


def test_v5_payload_format_utf8_text_passes(moat, broker):
    cid = unique("pfi")
    c = connected_wire(moat, V5, cid)
    try:
        topic = "sec/pfi/" + cid
        body = pub_body(topic, "grüße ✓".encode(), 1, 1, V5, b"\x01\x01")
        c.send(w.packet(PUBLISH, 1 << 1, body))
        broker.wait_log(r"Received PUBLISH from %s .*'%s'" % (cid, topic))
    finally:
        c.close()
