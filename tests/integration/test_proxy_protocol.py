"""PROXY protocol (issue #12): a listener behind a load balancer sees the device's real
address (audit `remote`, per-IP limits, bans), only from trusted_proxies; backend.proxy_protocol
v2 tells the broker who the device is (checked by a fake broker that reads the header, and by
HAProxy's accept-proxy); session takeover across two gateway replicas in front of one broker.

Loopback only: 127.0.0.1 plays the trusted balancer, 127.0.0.2 an untrusted host. The
addresses inside the headers are documentation ranges (RFC 5737 / RFC 3849)."""

import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading

import pytest

import moat_harness as h
import mqtt_wire as w

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---------------------------------------------------------------------------------------------
# helpers

def v2_header(src, sport, dst, dport, tlvs=b"", command=1):
    """PROXY v2 header; IPv6 when the source address has a colon. command 0 = LOCAL."""
    if command == 0:
        return SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    if ":" in src:
        addr = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!HH", sport, dport))
        fam = 0x21
    else:
        addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        fam = 0x11
    body = addr + tlvs
    return SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def v1_header(src, sport, dst, dport):
    proto = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


class TlsPipe:
    """TLS over a raw socket through memory BIOs, so the PROXY header and the ClientHello
    leave in ONE send (the gateway must hand the bytes after the header to TLS). Socket-like
    enough for mqtt_wire.WireClient."""

    def __init__(self, raw, ctx, prefix):
        self.raw = raw
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        pending = prefix
        while True:
            try:
                self.obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            pending += self.out.read()
            if pending:
                raw.sendall(pending)
                pending = b""
            if done:
                return
            data = raw.recv(65536)
            if not data:
                raise EOFError("closed during the TLS handshake")
            self.inc.write(data)

    def fileno(self):
        return self.raw.fileno()

    def settimeout(self, t):
        self.raw.settimeout(t)

    def setsockopt(self, *a):
        self.raw.setsockopt(*a)

    def sendall(self, data):
        self.obj.write(data)
        self.raw.sendall(self.out.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return b""
            data = self.raw.recv(65536)
            if not data:
                return b""
            self.inc.write(data)

    def detach(self):
        return self.raw.detach()

    def close(self):
        self.raw.close()


def raw_socket(moat, src=None):
    host = moat.config["listeners"][0]["bind"].rsplit(":", 1)[0].strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    if src:
        s.bind((src, 0))
    s.connect((host, moat.port))
    return s


def proxied(moat, header, cert="device1", version=4, src=None):
    """A WireClient whose connection starts with `header` (sent with the ClientHello)."""
    raw = raw_socket(moat, src)
    pipe = TlsPipe(raw, moat.certs.context(cert), header)
    c = w.WireClient.__new__(w.WireClient)
    c.version, c.timeout, c.sock, c.buf = version, 10.0, pipe, bytearray()
    return c


def refused(moat, header, src=None, cert="device1"):
    """True when the gateway closes the connection before any CONNACK."""
    raw = raw_socket(moat, src)
    try:
        try:
            c = w.WireClient.__new__(w.WireClient)
            c.version, c.timeout, c.buf = 4, 10.0, bytearray()
            c.sock = TlsPipe(raw, moat.certs.context(cert), header)
            c.send(w.connect_packet("refused-probe"))
            c.read_packet()
        except (EOFError, ConnectionError, ssl.SSLError, w.WireError):
            return True
        return False
    finally:
        raw.close()


def proxy_moat(moat_factory, mode="v2", trusted=("127.0.0.1/32",), overrides=None, bind=None,
               start=True, broker_=None):
    listener = {"proxy_protocol": mode, "trusted_proxies": list(trusted)}
    if bind:
        listener["bind"] = bind
    return moat_factory(listener=listener, overrides=overrides, start=start, broker_=broker_)


def connect_events(moat, client_id):
    return [e for e in moat.audit_events("connect") if e.get("client_id") == client_id]


def wait_remote(moat, client_id, remote):
    moat.wait_audit(lambda e: e.get("event") == "connect" and e.get("client_id") == client_id,
                    message="connect audit event for " + client_id)
    got = [e["remote"] for e in connect_events(moat, client_id)]
    assert got == [remote], got


# ---------------------------------------------------------------------------------------------
# listener side

def test_v2_from_trusted_source_sets_the_audited_address(moat_factory, broker):
    moat = proxy_moat(moat_factory, "v2")
    c = proxied(moat, v2_header("203.0.113.7", 40001, "198.51.100.1", 8883))
    assert c.connect("pp-v2") == 0
    wait_remote(moat, "pp-v2", "203.0.113.7:40001")
    assert moat.metric("moat_connections_active", listener="mqtts") == 1
    # The session works end to end.
    assert c.subscribe([("pp/t", 1)]) == [1]
    assert c.publish("pp/t", b"x", qos=1) == 0
    c.close()
    h.wait_until(lambda: moat.metric("moat_connections_active", listener="mqtts") == 0,
                 message="connection gauge back to 0")


def test_v2_with_tlvs_and_ipv6_source(moat_factory, broker):
    moat = proxy_moat(moat_factory, "v2")
    tlvs = (tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9") + tlv(0x01, b"mqtt") +
            tlv(0x04, b"\x00" * 7))
    c = proxied(moat, v2_header("2001:db8::7", 5555, "2001:db8::1", 8883, tlvs))
    assert c.connect("pp-v6") == 0
    wait_remote(moat, "pp-v6", "[2001:db8::7]:5555")
    c.close()


def test_v1_and_any(moat_factory, broker):
    m1 = proxy_moat(moat_factory, "v1")
    c = proxied(m1, v1_header("192.0.2.44", 1234, "198.51.100.1", 8883))
    assert c.connect("pp-v1") == 0
    wait_remote(m1, "pp-v1", "192.0.2.44:1234")
    c.close()
    c = proxied(m1, v1_header("2001:db8::44", 1235, "2001:db8::1", 8883))
    assert c.connect("pp-v1-6") == 0
    wait_remote(m1, "pp-v1-6", "[2001:db8::44]:1235")
    c.close()
    # A v2 header on a v1 listener is refused.
    assert refused(m1, v2_header("192.0.2.45", 1, "198.51.100.1", 8883))

    many = proxy_moat(moat_factory, "any")
    for cid, header, remote in [
            ("any-1", v1_header("192.0.2.50", 50, "198.51.100.1", 8883), "192.0.2.50:50"),
            ("any-2", v2_header("192.0.2.51", 51, "198.51.100.1", 8883), "192.0.2.51:51")]:
        c = proxied(many, header)
        assert c.connect(cid) == 0
        wait_remote(many, cid, remote)
        c.close()


def test_v2_local_command_uses_the_socket_address(moat_factory, broker):
    """Balancer health checks (v2 LOCAL) are the balancer's own connections."""
    moat = proxy_moat(moat_factory, "v2")
    c = proxied(moat, v2_header(None, 0, None, 0, command=0))
    assert c.connect("pp-local") == 0
    local_port = c.sock.raw.getsockname()[1]
    wait_remote(moat, "pp-local", "127.0.0.1:%d" % local_port)
    c.close()


def test_untrusted_source_is_refused_at_accept(moat_factory, broker):
    moat = proxy_moat(moat_factory, "v2")
    header = v2_header("203.0.113.8", 1, "198.51.100.1", 8883)
    assert refused(moat, header, src="127.0.0.2")
    moat.wait_audit(lambda e: e.get("event") == "protocol_error" and
                    e.get("remote", "").startswith("127.0.0.2:") and
                    "trusted_proxies" in e.get("reason", ""),
                    message="protocol_error audit for the untrusted source")
    assert moat.metric("moat_protocol_errors_total", reason="proxy_untrusted_source") >= 1
    assert moat.metric("moat_connections_total", result="accepted") == 0
    # The trusted one still gets in.
    c = proxied(moat, header)
    assert c.connect("pp-after-untrusted") == 0
    c.close()
    broker.wait_log("as pp-after-untrusted")


def test_missing_or_malformed_header_from_trusted_source_is_refused(moat_factory, broker):
    moat = proxy_moat(moat_factory, "any")
    bad = [
        b"",  # plain TLS, no header
        b"PROXY TCP4 203.0.113.1 198.51.100.1 99999 8883\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 1 8883\r\n",
        SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12,  # UDP
        SIG + b"\x21\x11\x00\x10" + b"\x00" * 12 + b"\x01\x00\x09\x00",  # TLV past the end
        SIG + b"\x21\x11\xff\xff",  # oversized
    ]
    for header in bad:
        assert refused(moat, header), header
    h.wait_until(lambda: moat.metric("moat_protocol_errors_total", reason="proxy_header")
                 >= len(bad), message="every bad header counted")
    events = [e for e in moat.audit_events("protocol_error")
              if e.get("reason", "").startswith("PROXY header")]
    assert len(events) >= len(bad)
    assert all(e["remote"].startswith("127.0.0.1:") for e in events)
    # Truncated: half a header, then the balancer gives up (closes its side).
    s = raw_socket(moat)
    s.sendall(v2_header("203.0.113.9", 1, "198.51.100.1", 8883)[:20])
    s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b""
    s.close()
    assert moat.metric("moat_connections_total", result="accepted") == 0
    assert broker.connection_count() == 0


def test_header_timeout_is_the_handshake_timeout(moat_factory, broker):
    moat = proxy_moat(moat_factory, "v2", overrides={"limits": {"handshake_timeout": "1s"}})
    s = raw_socket(moat)
    try:
        s.sendall(v2_header("203.0.113.9", 1, "198.51.100.1", 8883)[:20])  # half a header
        s.settimeout(10)
        assert s.recv(100) == b""  # closed by the gateway, not by our 10 s bound
    finally:
        s.close()
    moat.wait_audit(lambda e: e.get("event") == "disconnect" and
                    e.get("reason") == "handshake_timeout", message="handshake_timeout audit")
    assert moat.metric("moat_rate_limited_total", limit="handshake_timeout") >= 1


def test_per_ip_limit_applies_to_the_real_address(moat_factory, broker):
    moat = proxy_moat(moat_factory, "v2",
                      overrides={"limits": {"max_connections_per_ip": 1}})
    first = proxied(moat, v2_header("203.0.113.20", 1, "198.51.100.1", 8883))
    assert first.connect("per-ip-1") == 0
    # Same real address through the same balancer: over the limit.
    assert refused(moat, v2_header("203.0.113.20", 2, "198.51.100.1", 8883))
    moat.wait_audit(lambda e: e.get("event") == "rate_limited" and
                    e.get("remote") == "203.0.113.20", message="rate_limited for the real IP")
    # Another device behind the same balancer is not affected.
    other = proxied(moat, v2_header("203.0.113.21", 1, "198.51.100.1", 8883))
    assert other.connect("per-ip-2") == 0
    first.close()
    other.close()


def test_ban_applies_to_the_real_address(moat_factory, broker):
    moat = proxy_moat(moat_factory, "v2",
                      overrides={"bans": {"auth_failures": 1, "window": "60s",
                                          "duration": "5m", "max_duration": "5m"}})
    # A device presenting a certificate from an unknown CA: authentication failure -> ban.
    assert refused(moat, v2_header("203.0.113.66", 1, "198.51.100.1", 8883), cert="rogue")
    moat.wait_audit(lambda e: e.get("event") == "ban" and e.get("remote") == "203.0.113.66",
                    message="ban of the real address")
    before = moat.metric("moat_connections_total", result="banned")
    assert refused(moat, v2_header("203.0.113.66", 2, "198.51.100.1", 8883))
    h.wait_until(lambda: moat.metric("moat_connections_total", result="banned") > before,
                 message="banned connection counted")
    # The balancer itself, and other devices behind it, are not banned.
    c = proxied(moat, v2_header("203.0.113.67", 1, "198.51.100.1", 8883))
    assert c.connect("not-banned") == 0
    c.close()


def test_ipv6_listener_and_trusted_ipv6_balancer(moat_factory, broker):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    moat = proxy_moat(moat_factory, "v2", trusted=["::1/128"],
                      bind="[::1]:%d" % h.free_port("::1"))
    c = proxied(moat, v2_header("203.0.113.30", 3030, "198.51.100.1", 8883))
    assert c.connect("pp-v6-listener") == 0
    wait_remote(moat, "pp-v6-listener", "203.0.113.30:3030")
    c.close()


# ---------------------------------------------------------------------------------------------
# backend side

class FakeBroker:
    """Reads a PROXY v2 header, then answers CONNECT with CONNACK 0 (enough for a session)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((h.HOST, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.headers = []
        self.connects = []
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, conn, n):
        out = b""
        while len(out) < n:
            chunk = conn.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(20)
        try:
            fixed = self._read(conn, 16)
            header = fixed + self._read(conn, struct.unpack("!H", fixed[14:16])[0])
            self.headers.append(header)
            first = self._read(conn, 2)
            length, mult, b = 0, 1, first[1]
            while True:
                length += (b & 0x7F) * mult
                if not b & 0x80:
                    break
                mult *= 128
                b = self._read(conn, 1)[0]
            self.connects.append(self._read(conn, length))
            conn.sendall(b"\x20\x02\x00\x00")
            while conn.recv(4096):
                pass
        except (OSError, EOFError):
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def decode_v2(header):
    assert header[:12] == SIG, header
    assert header[12] == 0x21, header  # v2 PROXY
    if header[13] == 0x11:
        src = socket.inet_ntoa(header[16:20])
        dst = socket.inet_ntoa(header[20:24])
        sport, dport = struct.unpack("!HH", header[24:28])
    else:
        assert header[13] == 0x21, header
        src = socket.inet_ntop(socket.AF_INET6, header[16:32])
        dst = socket.inet_ntop(socket.AF_INET6, header[32:48])
        sport, dport = struct.unpack("!HH", header[48:52])
    return (src, sport), (dst, dport)


@pytest.fixture
def fake_broker():
    b = FakeBroker()
    yield b
    b.close()


def test_backend_v2_header_carries_the_device_address(moat_factory, fake_broker):
    overrides = {"backend": {"proxy_protocol": "v2"}}
    # A plain listener: the header names the device's own socket and the listener address.
    plain = moat_factory(overrides=overrides, broker_=fake_broker)
    c = plain.wire()
    assert c.connect("backend-pp-1") == 0
    h.wait_until(lambda: len(fake_broker.headers) == 1, message="header at the fake broker")
    src, dst = decode_v2(fake_broker.headers[0])
    assert src == c.sock.getsockname()[:2]
    assert dst == (h.HOST, plain.port)
    assert b"backend-pp-1" in fake_broker.connects[0]  # CONNECT right after the header
    c.close()

    # Behind a balancer: the address from the listener's PROXY header goes on to the broker.
    behind = proxy_moat(moat_factory, "v2", overrides=overrides, broker_=fake_broker)
    c = proxied(behind, v2_header("2001:db8::99", 9999, "2001:db8::1", 8883))
    assert c.connect("backend-pp-2") == 0
    h.wait_until(lambda: len(fake_broker.headers) == 2, message="second header")
    src, dst = decode_v2(fake_broker.headers[1])
    assert src == ("2001:db8::99", 9999)
    assert dst == ("2001:db8::1", 8883)
    c.close()


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")
def test_backend_v2_header_understood_by_haproxy(moat_factory, broker, tmp_path):
    """moat -> HAProxy (bind ... accept-proxy) -> Mosquitto: HAProxy, real software, parses
    the header Moat writes and logs the device address it carries."""
    port = h.free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("""
global
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    option logasap
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %s:%d accept-proxy
    log-format "client=%%ci:%%cp frontend=%%fi:%%fp"
    default_backend be
backend be
    server mosquitto %s:%d
""" % (h.HOST, port, h.HOST, broker.port))
    out = tmp_path / "haproxy.out"
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=open(out, "wb"),
                            stderr=subprocess.STDOUT)
    try:
        h.wait_until(lambda: proc.poll() is not None or h.port_accepts(h.HOST, port),
                     message="haproxy to listen")
        assert proc.poll() is None, out.read_text()
        relay = type("Relay", (), {"port": port})()
        moat = proxy_moat(moat_factory, "v2", overrides={"backend": {"proxy_protocol": "v2"}},
                          broker_=relay)
        c = proxied(moat, v2_header("203.0.113.77", 7777, "198.51.100.1", 8883))
        assert c.connect("via-haproxy") == 0
        assert c.subscribe([("hp/t", 0)]) == [0]
        h.wait_until(lambda: "client=203.0.113.77:7777 frontend=198.51.100.1:8883"
                     in out.read_text(), message="haproxy log line with the device address")
        c.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------------------------------------
# replicas

def test_session_takeover_across_two_gateways(moat_factory, broker):
    """Same client id via replica A, then via replica B: the broker takes the session over
    and closes A's broker connection; A closes its device and keeps nothing behind."""
    a = moat_factory()
    b = moat_factory()
    ca = a.wire(version=5)
    assert ca.connect("roaming-device") == 0
    h.wait_until(lambda: a.metric("moat_connections_active", listener="mqtts") == 1,
                 message="A counts the device")
    cb = b.wire(version=5)
    assert cb.connect("roaming-device") == 0
    # The broker closes the old connection (Mosquitto 2.0 just closes it; brokers that send
    # DISCONNECT 0x8E "session taken over" have it forwarded); A closes the device in turn.
    assert ca.wait_closed() in (None, 0x8E)
    h.wait_until(lambda: a.metric("moat_connections_active", listener="mqtts") == 0,
                 message="A's connection gauge back to 0")
    assert b.metric("moat_connections_active", listener="mqtts") == 1
    # The session on B works.
    assert cb.subscribe([("roam/t", 1)]) == [1]
    assert cb.publish("roam/t", b"x", qos=1) == 0
    # A recorded one connect and one disconnect, and no error or protocol error.
    a.wait_audit(lambda e: e.get("event") == "disconnect" and
                 e.get("client_id") == "roaming-device", message="A's disconnect event")
    assert not a.audit_events("protocol_error")
    # (The open-file limit warning depends on the machine, not on the takeover.)
    noisy = [line for line in a.stderr().splitlines()
             if re.search(r"Z (warn|error) ", line) and "open-file limit" not in line]
    assert not noisy, noisy
    # The device can come back through A (nothing stale there).
    cb.close()
    again = a.wire(version=5)
    assert again.connect("roaming-device") == 0
    again.close()
