"""MQTT over WebSocket (issue 23): wss and ws listeners in front of a real Mosquitto.

Real clients (paho-mqtt transport="websockets", 3.1.1 and 5) and a raw RFC 6455 client
(ws_wire.WsWire) for every refusal and framing rule: refusals are plain HTTP with no broker
connection, counted and audited; the upgrade head and the MQTT bytes split at every byte
offset; binary only, masked only, fragmentation, ping, close codes; frames streamed into the
MQTT splitter so max_packet_size applies per MQTT packet. Loopback only."""

import socket
import ssl
import time

import paho.mqtt.client as paho
import pytest

import moat_harness as h
import mqtt_wire as w
import ws_wire as ws

TLS_ANON = {"require_client_cert": False}


def ws_moat(moat_factory, websocket=None, plain_ws=None, overrides=None, listener=None,
            plain_listener=None, tls=None, with_plain=True):
    """Listener 0: wss (client certificates optional, anonymous allowed); plus a plain ws
    listener at moat.ws_port."""
    port = h.free_port()
    extra = [{"name": "ws", "bind": "127.0.0.1:%d" % port,
              "websocket": plain_ws if plain_ws is not None else {}}]
    extra[0].update(plain_listener or {})
    if not with_plain:
        extra = None
    lst = {"name": "wss", "websocket": websocket if websocket is not None else {}}
    lst.update(listener or {})
    m = moat_factory(h.deep_merge({"auth": {"methods": ["certificate"], "anonymous": True}},
                                  overrides), tls=dict(TLS_ANON, **(tls or {})), listener=lst,
                   extra_listeners=extra)
    m.ws_port = port
    # The harness waits for listener 0 only; the ws listener's workers may bind a moment later.
    if with_plain:
        h.wait_until(lambda: h.port_accepts("127.0.0.1", port), message="the ws listener")
    return m


def wss(moat, **kw):
    return ws.WsWire("127.0.0.1", moat.port, moat.certs.context("device1"), **kw)


def plain(moat, **kw):
    return ws.WsWire("127.0.0.1", moat.ws_port, None, **kw)


def handshake_errors(moat):
    return moat.metric("moat_protocol_errors_total", reason="websocket_handshake")


# ---------------------------------------------------------------------------------------------
# real clients

def paho_ws(moat, version, port, tls, client_id):
    proto = {4: paho.MQTTv311, 5: paho.MQTTv5}[version]
    c = paho.Client(client_id=client_id, protocol=proto, transport="websockets")
    c.ws_set_options(path="/mqtt")
    if tls:
        cert, key = moat.certs.client("device1")
        c.tls_set(ca_certs=moat.certs.ca, certfile=cert, keyfile=key)
    got, acked = [], []
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    c.on_subscribe = lambda *a: acked.append(True)
    connacks = []
    c.on_connect = lambda cl, u, f, rc, p=None: connacks.append(rc)
    c.connect("localhost", port, 30)
    c.loop_start()
    return c, got, acked, connacks


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("secure", [True, False], ids=["wss", "ws"])
def test_paho_websocket_roundtrip(moat_factory, broker, version, secure):
    moat = ws_moat(moat_factory)
    c, got, acked, connacks = paho_ws(moat, version, moat.port if secure else moat.ws_port,
                                      secure, "paho-ws-%d-%s" % (version, secure))
    try:
        h.wait_until(lambda: connacks, message="CONNACK over WebSocket")
        assert connacks[0] == 0
        c.subscribe("ws/test/#", qos=1)
        h.wait_until(lambda: acked, message="SUBACK")
        for qos in (0, 1, 2):
            c.publish("ws/test/%d" % qos, b"hello %d" % qos, qos=qos)
        h.wait_until(lambda: len(got) == 3, message="three messages back")
        assert sorted(got) == [("ws/test/%d" % q, b"hello %d" % q) for q in (0, 1, 2)]
    finally:
        c.disconnect()
        c.loop_stop()
    # One session, audited like a raw listener's, under the listener's name.
    ev = moat.wait_audit(lambda e: e.get("event") == "connect"
                         and e.get("client_id") == "paho-ws-%d-%s" % (version, secure))
    assert ev[0]["listener"] == ("wss" if secure else "ws")
    if secure:
        assert ev[0]["identity"] == "device1"  # the client certificate works over wss


def test_raw_mqtt_client_and_websocket_policy_are_the_same(moat_factory, broker):
    """Every MQTT rule goes through the same code: a denied publish is denied over ws too."""
    moat = ws_moat(moat_factory, overrides={"policy": {
        "roles": {"tester": {"publish": ["allowed/#"], "subscribe": ["#"]}},
        "on_publish_denied": "disconnect"}})
    c = plain(moat, version=5)
    assert c.connect("deny-me") == 0
    c.publish("forbidden/x", b"x", qos=0)
    assert c.wait_closed() == 0x87
    # DISCONNECT for a policy violation, then close 1008.
    assert c.close_code == 1008
    assert moat.metric("moat_authz_denied_total", action="publish") >= 1


# ---------------------------------------------------------------------------------------------
# the upgrade

REFUSALS = [
    ("path", dict(path="/other"), 404),
    ("not_upgrade", dict(raw_request=b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"), 426),
    ("version", dict(version="8"), 426),
    ("no_version", dict(version=None), 426),
    ("key", dict(key="c2hvcnQ="), 400),
    ("subprotocol", dict(protocols="chat, MQTT"), 400),
    ("no_subprotocol", dict(protocols=None), 400),
    ("origin", dict(origin="https://evil.example.com"), 403),
    ("not_http", dict(raw_request=b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"), 400),
    ("bare_lf", dict(raw_request=b"GET /mqtt HTTP/1.1\nHost: x\n\n"), 400),
    ("too_large", dict(raw_request=b"GET /mqtt HTTP/1.1\r\nX-Pad: " + b"a" * 9000), 400),
]


@pytest.mark.parametrize("secure", [True, False], ids=["wss", "ws"])
def test_refusals_are_plain_http_counted_audited_and_never_reach_the_broker(
        moat_factory, broker, secure):
    origins = {"allowed_origins": ["https://dashboard.example.com"]}
    moat = ws_moat(moat_factory, websocket=origins, plain_ws=origins)
    before = handshake_errors(moat)
    for name, req, status in REFUSALS:
        c = (wss if secure else plain)(moat, upgrade=False)
        got, body = c.upgrade(**req)
        assert got == status, name
        assert c.headers.get("connection", "").lower() == "close", name
        if status == 426:
            assert c.headers.get("sec-websocket-version") == "13", name
        assert c.wait_eof(), name
        c.close()
    n = len(REFUSALS)
    h.wait_until(lambda: handshake_errors(moat) == before + n, message="refusals counted")
    refused = moat.wait_audit(lambda e: e.get("event") == "protocol_error"
                              and "websocket handshake refused" in e.get("reason", ""))
    h.wait_until(lambda: len([e for e in moat.audit_events("protocol_error")
                              if "websocket handshake refused" in e.get("reason", "")]) == n,
                 message="refusals audited")
    assert refused[0]["listener"] == ("wss" if secure else "ws")
    assert broker.connection_count() == 0
    # Allowed origin, and no Origin at all (not a browser): both upgrade.
    for origin in ("https://dashboard.example.com", None):
        c = (wss if secure else plain)(moat, origin=origin)
        assert c.connect("origin-ok") == 0
        c.close()


def test_handshake_timeout_covers_the_upgrade(moat_factory, broker):
    moat = ws_moat(moat_factory, overrides={"limits": {"handshake_timeout": "1s"}})
    c = plain(moat, upgrade=False)
    c.send_raw(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    assert c.wait_eof(timeout=10)
    assert broker.connection_count() == 0


def test_upgrade_head_split_at_every_offset(moat_factory, broker):
    moat = ws_moat(moat_factory)
    data, key = ws.request(key="dGhlIHNhbXBsZSBub25jZQ==")
    connect = w.connect_packet("split-head")
    # The CONNECT's first frame in the same piece as the end of the head: it must reach the
    # frame layer, not be lost with the head buffer.
    for at in range(1, len(data)):
        c = plain(moat, upgrade=False)
        c.send_raw(data[:at])
        time.sleep(0.002)
        c.send_raw(data[at:] + ws.frame(ws.BINARY, connect))
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in c.raw:
            c._read_raw(deadline)
        head, _, rest = bytes(c.raw).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), at
        assert ws.accept_for(key).encode() in head
        c.raw = bytearray(rest)
        ack = c.read_packet()
        assert ack.type == w.CONNACK and ack.body[1] == 0, at
        c.close()


# ---------------------------------------------------------------------------------------------
# frames

def test_mqtt_split_across_frames_at_every_offset(moat_factory, broker):
    moat = ws_moat(moat_factory)
    stream = w.connect_packet("split-frames") + w.subscribe_packet([("split/#", 1)], 7)
    for at in range(0, len(stream) + 1):
        c = plain(moat)
        c.send_raw(ws.frame(ws.BINARY, stream[:at]) + ws.frame(ws.BINARY, stream[at:]))
        ack = c.read_packet()
        assert ack.type == w.CONNACK and ack.body[1] == 0, at
        sub = c.read_packet()
        assert sub.type == w.SUBACK and sub.body == b"\x00\x07\x01", at
        c.close()


def test_fragmented_message_with_ping_between_fragments(moat_factory, broker):
    moat = ws_moat(moat_factory)
    stream = w.connect_packet("fragments") + w.subscribe_packet([("frag/#", 0)], 3)
    c = plain(moat)
    # One message, one byte per fragment, a ping in the middle (control frames may interleave).
    parts = [ws.frame(ws.BINARY if i == 0 else 0, stream[i:i + 1], fin=(i == len(stream) - 1))
             for i in range(len(stream))]
    parts.insert(5, ws.frame(ws.PING, b"are you there"))
    c.send_raw(b"".join(parts))
    assert c.read_packet().type == w.CONNACK
    assert c.read_packet().type == w.SUBACK
    assert c.pongs == [b"are you there"]
    c.publish("frag/x", b"payload", qos=0)
    assert c.publishes(1.0) == [("frag/x", b"payload")]


@pytest.mark.parametrize("name,bad,code", [
    ("text", ws.frame(ws.TEXT, b"hi"), 1003),
    ("unmasked", ws.frame(ws.BINARY, w.packet(w.PINGREQ, 0, b""), mask=False), 1002),
    ("reserved_bits", ws.frame(ws.BINARY, w.packet(w.PINGREQ, 0, b""), rsv=4), 1002),
    ("continuation_first", ws.frame(0, w.packet(w.PINGREQ, 0, b"")), 1002),
    ("long_ping", ws.frame(ws.PING, b"x" * 126), 1002),
    ("unknown_opcode", ws.frame(3, b""), 1002),
])
def test_framing_violations_close_with_their_code(moat_factory, broker, name, bad, code):
    moat = ws_moat(moat_factory)
    c = plain(moat)
    assert c.connect("bad-" + name) == 0
    c.send_raw(bad)
    assert c.wait_close_frame() == code
    assert c.wait_eof()
    h.wait_until(lambda: moat.metric("moat_protocol_errors_total", reason="websocket_frame") == 1,
                 message="framing error counted")
    moat.wait_audit(lambda e: e.get("event") == "protocol_error"
                    and e.get("reason", "").startswith("websocket: "))


def test_frame_rules_hold_at_every_split_offset(moat_factory, broker):
    """A text frame after a PINGREQ, the stream cut at every offset: close 1003 (the PINGREQ
    before it went to the broker; its answer may or may not beat the close)."""
    moat = ws_moat(moat_factory)
    stream = ws.frame(ws.BINARY, w.packet(w.PINGREQ, 0, b"")) + ws.frame(ws.TEXT, b"text")
    for at in range(1, len(stream)):
        c = plain(moat)
        assert c.connect("split-rule-%d" % at) == 0
        c.send_raw(stream[:at])
        time.sleep(0.002)
        c.send_raw(stream[at:])
        assert c.wait_close_frame() == 1003, at
        c.close()


def test_client_close_is_answered_and_the_broker_sees_a_clean_end(moat_factory, broker):
    moat = ws_moat(moat_factory)
    c = wss(moat)
    assert c.connect("closer") == 0
    c.send_frame(ws.CLOSE, b"\x03\xe8bye")
    assert c.wait_close_frame() == 1000
    assert c.wait_eof()
    broker.wait_log(r"closer")


def test_close_behind_throttled_publishes_still_delivers_them(moat_factory, broker):
    """Six QoS 0 PUBLISHes and a close frame in one write, from a client throttled at 2/s: the
    frames are unwrapped at once, the PUBLISHes wait for the bucket, and the close comes after
    them, not instead of them."""
    moat = ws_moat(moat_factory, overrides={"limits": {"publish_rate": "2/s",
                                                       "on_exceed": "throttle"}})
    sub = plain(moat)
    assert sub.connect("thr-sub") == 0
    assert sub.subscribe([("thr/#", 0)]) == [0]
    pub = plain(moat)
    assert pub.connect("thr-pub") == 0
    burst = b"".join(ws.frame(ws.BINARY, w.publish_packet("thr/%d" % i, b"m%d" % i))
                     for i in range(6))
    pub.send_raw(burst + ws.frame(ws.CLOSE, b"\x03\xe8"))
    got = []
    deadline = time.monotonic() + 15
    while len(got) < 6 and time.monotonic() < deadline:
        got += sub.publishes(1.0)
    assert [t for t, _ in got] == ["thr/%d" % i for i in range(6)]
    assert pub.wait_close_frame() == 1000


def test_mqtt_disconnect_ends_with_close_1000(moat_factory, broker):
    moat = ws_moat(moat_factory)
    c = plain(moat, version=5)
    assert c.connect("bye") == 0
    c.send(w.disconnect_packet(5))
    assert c.wait_close_frame() == 1000


def test_protocol_violation_disconnect_then_1008(moat_factory, broker):
    moat = ws_moat(moat_factory)
    c = plain(moat, version=5)
    assert c.connect("second-connect") == 0
    c.send(w.connect_packet("again", version=5))
    assert c.wait_closed() == 0x82  # protocol error
    assert c.close_code == 1008


def test_drain_sends_1001(moat_factory, broker):
    moat = ws_moat(moat_factory)
    c = wss(moat, version=5)
    assert c.connect("drained") == 0
    moat.proc.send_signal(15)
    assert c.wait_closed(timeout=10) == 0x8B
    assert c.close_code == 1001
    moat.proc.wait(10)


def test_frames_stream_packet_limits_apply_per_mqtt_packet(moat_factory, broker):
    """Two legal 1.5 MiB PUBLISHes in one 3 MiB frame pass under a 2 MiB max_packet_size; a
    2.5 MiB PUBLISH does not, though it is smaller than that frame."""
    moat = ws_moat(moat_factory, overrides={"limits": {"max_packet_size": "2MiB"}})
    sub = plain(moat, timeout=20)
    assert sub.connect("big-sub") == 0
    assert sub.subscribe([("big/#", 0)]) == [0]
    pub = plain(moat, version=5, timeout=20)
    assert pub.connect("big-pub") == 0
    big = 1536 * 1024
    one = w.publish_packet("big/a", b"a" * big, version=5)
    two = w.publish_packet("big/b", b"b" * big, version=5)
    pub.send(one + two)  # one frame of 3 MiB
    got = sub.publishes(3.0)
    assert [(t, len(p)) for t, p in got] == [("big/a", big), ("big/b", big)]
    pub.send(w.publish_packet("big/c", b"c" * (2560 * 1024), version=5))
    assert pub.wait_closed(timeout=20) == 0x95  # packet too large
    assert pub.close_code == 1008


def test_forwarded_for_from_a_trusted_balancer(moat_factory, broker):
    # The plain ws listener trusts 127.0.0.1 (the test plays the balancer).
    moat = ws_moat(moat_factory, plain_ws={"forwarded_for": True},
                   plain_listener={"trusted_proxies": ["127.0.0.1/32"]})
    c = plain(moat, extra=["X-Forwarded-For: 198.51.100.1, 203.0.113.9, 127.0.0.1"])
    assert c.connect("behind-lb") == 0
    ev = moat.wait_audit(lambda e: e.get("event") == "connect"
                         and e.get("client_id") == "behind-lb")
    assert ev[0]["remote"].startswith("203.0.113.9:")
    c.close()
    # On the wss listener (forwarded_for off) the header is ignored.
    d = wss(moat, extra=["X-Forwarded-For: 203.0.113.10"])
    assert d.connect("direct") == 0
    ev = moat.wait_audit(lambda e: e.get("event") == "connect" and e.get("client_id") == "direct")
    assert ev[0]["remote"].startswith("127.0.0.1:")


def test_forwarded_for_per_ip_admission(moat_factory, broker):
    moat = ws_moat(moat_factory, plain_ws={"forwarded_for": True},
                   overrides={"limits": {"max_connections_per_ip": 1}},
                   plain_listener={"trusted_proxies": ["127.0.0.1/32"]})
    a = plain(moat, extra=["X-Forwarded-For: 203.0.113.1"])
    assert a.connect("ip-a") == 0
    # Another browser behind the same balancer: its own address, its own cap.
    b = plain(moat, extra=["X-Forwarded-For: 203.0.113.2"])
    assert b.connect("ip-b") == 0
    # The same address again is over max_connections_per_ip: refused after the head.
    c = plain(moat, upgrade=False)
    req, _ = ws.request(extra=["X-Forwarded-For: 203.0.113.1"])
    c.send_raw(req)
    assert c.wait_eof()
    assert bytes(c.raw).startswith(b"HTTP/1.1 429 Too Many Requests\r\n")


@pytest.mark.parametrize("version", [4, 5])
def test_refused_connect_then_1008_and_no_broker(moat_factory, broker, version):
    moat = ws_moat(moat_factory, overrides={"auth": {"anonymous": False}}, with_plain=False)
    c = ws.WsWire("127.0.0.1", moat.port, moat.certs.context(None), version=version)
    assert c.connect("nobody") != 0  # no certificate, no anonymous access
    assert c.wait_close_frame() == 1008
    assert c.wait_eof()
    assert broker.connection_count() == 0
