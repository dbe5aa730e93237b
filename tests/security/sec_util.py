"""Helpers of the security suite: raw attack bytes over mTLS, and the three checks every
attack case ends with (refused correctly, nothing forwarded, gateway still serves)."""

import itertools
import socket
import ssl
import struct
import threading
import time

import moat_harness as h
import mqtt_wire as w

_ids = itertools.count()


def unique(prefix):
    return "%s-%d-%d" % (prefix, int(time.time() * 1000) % 100000, next(_ids))


def protocol_errors(moat, reason=None):
    if reason is None:
        return moat.metric("moat_protocol_errors_total")
    return moat.metric("moat_protocol_errors_total", reason=reason)


def wait_protocol_error(moat, before, reason=None):
    h.wait_until(lambda: protocol_errors(moat, reason) > before, 5,
                 message="moat_protocol_errors_total{reason=%s} to increase" % reason)


def wait_audit_protocol_error(moat, client_id=None):
    moat.wait_audit(lambda e: e.get("event") == "protocol_error" and
                    (client_id is None or e.get("client_id") == client_id),
                    message="protocol_error audit event")


def connected_wire(moat, version, client_id, **kw):
    c = moat.wire(version=version, **kw)
    rc = c.connect(client_id)
    assert rc == 0, "CONNECT refused with %#x" % rc
    return c


def expect_refused(c, version, reason):
    """v5: the gateway sends DISCONNECT `reason` then closes; v3: it just closes."""
    got = c.wait_closed(timeout=5)
    if version == 5:
        assert got == reason, "expected DISCONNECT %#x, got %r" % (reason, got)
    else:
        assert got is None, "v3 client got a DISCONNECT (%r)" % got


def assert_not_forwarded(broker, client_id=None, marker=None):
    """The broker received no packet from `client_id` after its CONNECT, and nothing carrying
    `marker` (a topic or client id piece) at all."""
    time.sleep(0.2)  # anything forwarded would be logged by now (the gateway flushes eagerly)
    log = broker.log()
    if marker:
        assert marker not in log, "broker saw %r:\n%s" % (marker, log[-3000:])
    if client_id:
        for what in ("PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", "PUBREL"):
            line = "Received %s from %s " % (what, client_id)
            assert line not in log, "broker got %s:\n%s" % (line, log[-3000:])


def assert_still_serves(moat, broker, version=4):
    """A well-behaved client connects, publishes QoS 1 and the broker receives it."""
    cid = unique("good")
    c = connected_wire(moat, version, cid)
    try:
        topic = "sec/ok/" + cid
        assert c.publish(topic, b"fine", qos=1) < 0x80  # v5: 0x10 no matching subscribers
        broker.wait_log(r"Received PUBLISH from %s .*'%s'" % (cid, topic))
    finally:
        c.close()


def pub_body(topic, payload=b"", qos=0, packet_id=1, version=4, props=b""):
    body = topic if isinstance(topic, bytes) else w.utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += w.varint(len(props)) + props
    return body + payload


def raw_tls(moat, cert="device1"):
    """A bare TLS socket to the gateway (no MQTT)."""
    ctx = moat.certs.context(cert)
    raw = socket.create_connection((h.HOST, moat.port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def wait_eof(sock, timeout):
    """True when the peer closes (EOF / reset / TLS alert) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return False
        except (ConnectionError, ssl.SSLError, OSError):
            return True
        if not data:
            return True
    return False


class ScriptedBrokerBase:
    """A fake broker on a loopback socket for what a real Mosquitto never does: accepts gateway
    connections, each served by `_session(conn)` (subclasses script it) on its own thread;
    `_read_packet` reads one MQTT packet (type, body). `close()` ends everything."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((h.HOST, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _read_packet(self, c):
        head = c.recv(1)
        if not head:
            raise EOFError
        length, mult = 0, 1
        for _ in range(4):
            b = c.recv(1)[0]
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        body = b""
        while len(body) < length:
            chunk = c.recv(length - len(body))
            if not chunk:
                raise EOFError
            body += chunk
        return head[0] >> 4, body

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        raise NotImplementedError

    def close(self):
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
