"""Audit #17, per-session state: subscriptions counted and seen by reloads (finding 2), topic
aliases that always equal the broker's (finding 3), and replies the gateway makes itself
bounded by back-pressure (finding 6). Each attack runs through a live moat in front of a real
Mosquitto."""

import signal
import socket
import struct
import time

import pytest

import moat_harness as h
import mqtt_wire as w
from sec_util import (assert_still_serves, connected_wire, expect_refused, protocol_errors,
                      pub_body, unique, wait_protocol_error)

V311, V5 = 4, 5
ALIAS = bytes([w.PROP_TOPIC_ALIAS])


def _subscribe(filters, packet_id, version):
    return w.subscribe_packet([(f, 0) for f in filters], packet_id, version)


def _broker_filters(broker, cid):
    """Filters the broker logged for SUBSCRIBEs from `cid` (Mosquitto logs each as a tab-
    indented line between 'Received SUBSCRIBE from CID' and 'Sending SUBACK')."""
    out, inside = [], False
    for line in broker.log().splitlines():
        if "Received SUBSCRIBE from %s" % cid in line:
            inside = True
            continue
        if inside and "\t" in line and "(QoS" in line:
            out.append(line.split("\t", 1)[1].rsplit(" (QoS", 1)[0])
        elif "Sending SUBACK" in line:
            inside = False
    return out


def _reload(moat, cfg):
    ok = moat.metric("moat_config_reloads_total", result="ok")
    moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > ok, 10,
                 message="reload ok counted")


# --- finding 2: max_subscriptions and subscriptions a reload never sees -----------------------

@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_subscribe_packet_id_in_use_is_refused(moat_factory, broker, version):
    """SUBSCRIBE id=1 [a,b,c] then SUBSCRIBE id=1 [y] in one write used to overwrite the first's
    pending state: a, b, c were never recorded (no limit, no reload re-check). A packet id in
    use is a protocol error: v5 DISCONNECT 0x91, v3 close; the second never reaches the broker."""
    moat = moat_factory({"limits": {"max_subscriptions": 3}})
    cid = unique("pid-reuse")
    before = protocol_errors(moat, "packet_id_in_use")
    c = connected_wire(moat, version, cid)
    try:
        m = unique("y")
        c.send(_subscribe(["sec/a", "sec/b", "sec/c"], 1, version) +
               _subscribe(["sec/" + m], 1, version))
        expect_refused(c, version, 0x91)
    finally:
        c.close()
    wait_protocol_error(moat, before, "packet_id_in_use")
    assert m not in broker.log()
    assert_still_serves(moat, broker, version)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_pipelined_subscribes_cannot_overshoot_the_limit(moat_factory, broker, version):
    """Distinct ids in one write, before any SUBACK: the limit counts filters in flight, so the
    broker gets exactly max_subscriptions filters and the client is told which were refused."""
    moat = moat_factory({"limits": {"max_subscriptions": 3}})
    cid = unique("pipelined")
    c = connected_wire(moat, version, cid)
    try:
        batch = b"".join(_subscribe(["sec/%s/%d" % (cid, i), "sec/%s/%d/x" % (cid, i)], i + 1,
                                    version) for i in range(5))
        c.send(batch)
        codes = []
        for _ in range(5):
            ack = c.expect(w.SUBACK)
            off = 2
            if version == V5:
                plen, off = w.decode_varint(ack.body, off)
                off += plen
            codes += list(ack.body[off:])
    finally:
        c.close()
    granted = [x for x in codes if x < 0x80]
    assert len(granted) == 3, codes
    time.sleep(0.2)  # the broker logs what it got as it gets it
    got = _broker_filters(broker, cid)
    assert len(set(got)) == 3, got


def test_resumed_session_deliveries_checked_without_check_deliveries(moat_factory, broker,
                                                                     wires):
    """check_deliveries: false trusts the subscriptions the gateway checked itself. A resumed
    persistent session (CONNACK session present) brings broker-side subscriptions this
    connection never saw: their deliveries are checked anyway."""
    moat = moat_factory({"policy": {"check_deliveries": False, "roles": {"tester": {
        "publish": ["#"], "subscribe": ["sec/open/#"]}}}})
    cid = unique("resumed")
    # A subscription made outside the gateway (an older policy, a direct connection).
    direct = w.WireClient(h.HOST, broker.port, None, V311)
    try:
        assert direct.connect(cid, clean=False) == 0
        assert direct.subscribe([("sec/#", 1)]) == [1]
        direct.send(w.disconnect_packet())
    finally:
        direct.close()
    broker.wait_log(r"Client %s disconnected" % cid)

    dev = wires(moat, version=V311)
    assert dev.connect(cid, clean=False) == 0
    pub = connected_wire(moat, V311, unique("pub"))
    try:
        assert pub.publish("sec/secret/" + cid, b"secret", qos=1) == 0
        assert pub.publish("sec/open/" + cid, b"fine", qos=1) == 0
    finally:
        pub.close()
    got = dev.publishes(1.0)
    assert got == [("sec/open/" + cid, b"fine")], got
    h.wait_until(lambda: moat.metric("moat_authz_denied_total", action="deliver") >= 1, 5,
                 message="moat_authz_denied_total{action=deliver}")


# --- finding 3: a topic alias re-pointed by a dropped PUBLISH ---------------------------------

def _alias_publish(topic, payload, packet_id, alias=1):
    return w.packet(w.PUBLISH, 2, pub_body(topic, payload, 1, packet_id, V5,
                                           ALIAS + struct.pack("!H", alias)))


def _puback_code(c):
    body = c.expect(w.PUBACK).body
    return body[2] if len(body) > 2 else 0


def test_dropped_publish_does_not_repoint_alias(moat_factory, broker):
    """Alias 1 -> A (allowed, forwarded), then alias 1 -> B (denied, dropped: the broker still
    maps 1 -> A). After a reload revoking A and allowing B, an alias-only PUBLISH is judged as
    the client means it (B) and, since the broker still maps the alias to A, forwarded with its
    topic B: the broker delivers exactly what was checked, never on the revoked A."""
    base = {"policy": {"roles": {"tester": {"publish": ["sec/a/#"], "subscribe": ["#"]}}}}
    moat = moat_factory(base)
    cid = unique("alias")
    a, b = "sec/a/" + cid, "sec/b/" + cid
    c = connected_wire(moat, V5, cid)
    try:
        c.send(_alias_publish(a, b"1", 1))
        assert _puback_code(c) < 0x80
        c.send(_alias_publish(b, b"2", 2))
        assert _puback_code(c) == 0x87
        _reload(moat, h.deep_merge(moat.config, {"policy": {"roles": {"tester": {
            "publish": ["sec/b/#"], "subscribe": ["#"]}}}}))
        m = unique("aliased")
        c.send(_alias_publish("", m.encode(), 3))
        assert _puback_code(c) < 0x80
        # The revoked topic stays out of reach, with or without the alias.
        c.send(_alias_publish(a, b"4", 4))
        assert _puback_code(c) == 0x87
        c.send(_alias_publish("", b"5", 5))
        assert _puback_code(c) == 0x87
    finally:
        c.close()
    time.sleep(0.2)
    log = broker.log()
    # Forwarded: "1" on A, then the alias-only one, sent with its topic B.
    assert log.count("Received PUBLISH from %s " % cid) == 2, log[-2000:]
    assert "'%s'" % b in log and log.count("'%s'" % a) == 1, log[-2000:]


# --- finding 6: replies pile up for a client that never reads ---------------------------------

def test_gateway_replies_to_a_client_that_never_reads_are_bounded(moat_factory, broker):
    """Denied QoS 1 publishes are answered by the gateway itself (PUBACK). A client that sends
    them and never reads used to grow the gateway without bound; now its outbound queue's
    high-water mark stops the gateway reading it, so memory stays bounded (the rest waits in
    the kernel's socket buffers, TCP flow control reaching the client)."""
    moat = moat_factory({"policy": {"roles": {"tester": {"publish": ["sec/ok/#"],
                                                         "subscribe": ["#"]}}},
                         "audit": {"max_events_per_second": 10}}, start=False)
    h.limit_asan_quarantine(moat)
    moat.start()
    cid = unique("nonreader")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, buffer little
    raw.settimeout(10)
    raw.connect((h.HOST, moat.port))
    s = moat.certs.context("device1").wrap_socket(raw, server_hostname="localhost")
    try:
        s.sendall(w.connect_packet(cid))
        ack = b""
        while len(ack) < 4:
            ack += s.recv(4 - len(ack))
        assert ack[0] >> 4 == w.CONNACK and ack[3] == 0
        rss_before = moat.rss_kib()
        # 7-byte denied publishes, each answered by a 4-byte PUBACK (a ~26-byte TLS record).
        one = w.packet(w.PUBLISH, 2, w.utf8("d") + struct.pack("!H", 1))
        chunk = one * 9000
        budget, sent = 8 * 1024 * 1024, 0
        s.settimeout(3)
        while sent < budget:
            try:
                s.sendall(chunk)
            except (socket.timeout, ssl_error()):
                break  # the gateway stopped reading us, and the kernel buffers are full
            sent += len(chunk)
        # Let the gateway work through what it has read (bounded wait, no threshold on time).
        h.wait_until(lambda: moat.metric("moat_packets_total", direction="client_to_broker",
                                         type="PUBLISH") > 0, 5, message="publishes counted")
        peak = 0
        for _ in range(10):
            peak = max(peak, moat.rss_kib() - rss_before)
            time.sleep(0.2)
        assert peak < 16 * 1024, "gateway grew by %d KiB for a non-reading client (sent %d B)" % (
            peak, sent)
        assert moat.metric("moat_client_reads_paused_total", reason="client_queue") >= 1
    finally:
        s.close()
    assert_still_serves(moat, broker)


def test_client_that_neither_reads_nor_can_send_meets_its_keepalive(moat_factory, broker):
    """A client that never reads makes the gateway stop reading it (above); it must not then
    hold its connection and buffers for ever because the pause looks like the gateway's own
    doing. Its keepalive (2 s here) ends it unless what the gateway sends it drains."""
    moat = moat_factory({"policy": {"roles": {"tester": {"publish": ["sec/ok/#"],
                                                         "subscribe": ["#"]}}},
                         "audit": {"max_events_per_second": 10}})
    cid = unique("stuck")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect((h.HOST, moat.port))
    s = moat.certs.context("device1").wrap_socket(raw, server_hostname="localhost")
    try:
        s.sendall(w.connect_packet(cid, keepalive=2))
        ack = b""
        while len(ack) < 4:
            ack += s.recv(4 - len(ack))
        assert ack[0] >> 4 == w.CONNACK and ack[3] == 0
        one = w.packet(w.PUBLISH, 2, w.utf8("d") + struct.pack("!H", 1))
        chunk = one * 9000
        budget, sent = 16 * 1024 * 1024, 0
        s.settimeout(3)
        while sent < budget:
            try:
                s.sendall(chunk)
            except (socket.timeout, ssl_error()):
                break  # paused by the gateway, kernel buffers full
            sent += len(chunk)
        h.wait_until(lambda: moat.metric("moat_client_reads_paused_total",
                                         reason="client_queue") >= 1, 10,
                     message="the gateway to stop reading the client")
        moat.wait_audit(lambda e: e.get("event") == "disconnect" and e.get("client_id") == cid
                        and "keepalive" in e.get("reason", ""), 30,
                        message="keepalive close of the stuck client")
    finally:
        s.close()
    assert_still_serves(moat, broker)


def ssl_error():
    import ssl
    return ssl.SSLError


# --- own sweep: the broker->client tables (aliases, flows) stay the broker's ------------------

class ScriptedBroker:
    """Answers one CONNECT with CONNACK 0, then sends `script` (raw bytes) and keeps reading."""

    def __init__(self, script, version):
        import threading
        self.script, self.version = script, version
        self.sock = socket.socket()
        self.sock.bind((h.HOST, 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(conn)
        conn.settimeout(20)
        try:
            conn.recv(65536)  # the CONNECT (small, one write)
            conn.sendall(b"\x20\x03\x00\x00\x00" if self.version == V5 else b"\x20\x02\x00\x00")
            conn.sendall(self.script)
            while conn.recv(4096):
                pass
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def _broker_publish(topic, payload, props=b"", flags=0):
    return w.packet(w.PUBLISH, flags, w.utf8(topic) + w.varint(len(props)) + props + payload)


@pytest.mark.parametrize("attack", ["unknown_alias", "qos3_flags", "subscribe_from_broker"])
def test_broker_packet_that_cannot_be_inspected_is_never_passed_on(moat_factory, attack):
    """A broker PUBLISH with an alias never set (its topic unknown: cannot be checked), one with
    reserved flags, a packet type a broker never sends: the client is disconnected (0x80) and
    moat_protocol_errors_total{reason="backend_malformed"} counts it, instead of the packet
    reaching the client unchecked."""
    m = unique("mark").encode()
    script = {
        "unknown_alias": _broker_publish("", m, ALIAS + struct.pack("!H", 7)),
        "qos3_flags": _broker_publish("sec/" + m.decode(), m, flags=6),
        "subscribe_from_broker": w.subscribe_packet([(m.decode(), 0)], 1, V5),
    }[attack]
    fake = ScriptedBroker(script, V5)
    try:
        moat = moat_factory({"policy": {"roles": {"tester": {"publish": ["#"],
                                                             "subscribe": ["sec/ok/#"]}}}},
                            broker_=fake)
        c = moat.wire(version=V5)
        try:
            assert c.connect(unique("victim")) == 0
            seen = []
            reason = None
            try:
                while True:
                    p = c.read_packet(5)
                    seen.append(p)
                    if p.type == w.DISCONNECT:
                        reason = p.body[0] if p.body else 0
            except (EOFError, ConnectionError, OSError):
                pass
            assert reason == 0x80, seen
            assert not any(m in p.body for p in seen), seen
        finally:
            c.close()
        h.wait_until(lambda: moat.metric("moat_protocol_errors_total",
                                         reason="backend_malformed") >= 1, 5,
                     message="backend_malformed counted")
    finally:
        fake.close()


def test_subscribes_outrunning_the_broker_are_not_read(moat_factory):
    """A broker that does not answer (busy, or kept busy): every forwarded SUBSCRIBE pins its
    filters in the gateway until the SUBACK. Past 4096 pending filters the gateway stops
    reading the client until the broker answers, instead of buffering without bound."""
    fake = ScriptedBroker(b"", V311)  # CONNACK, then silence
    try:
        moat = moat_factory({"limits": {"max_subscriptions": 1000000}}, broker_=fake)
        c = moat.wire(version=V311)
        try:
            assert c.connect(unique("outrun")) == 0
            c.sock.settimeout(3)
            for i in range(60):
                try:
                    c.send(_subscribe(["sec/%d/%d" % (i, j) for j in range(1000)], i + 1,
                                      V311))
                except OSError:
                    break  # the gateway stopped reading and the kernel buffers are full

            def subscribes():
                return moat.metric("moat_packets_total", direction="client_to_broker",
                                   type="SUBSCRIBE")
            h.wait_until(lambda: subscribes() >= 5, 10, message="SUBSCRIBEs counted")
            time.sleep(1.5)  # the per-worker packet counts are published about once a second
            assert subscribes() < 10, subscribes()
            assert moat.metric("moat_client_reads_paused_total", reason="pending_acks") >= 1
        finally:
            c.close()
    finally:
        fake.close()
