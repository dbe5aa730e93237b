"""Key exchange a client can drive (issue #19.1).

OpenSSL's default group list includes ffdhe2048..8192; a TLS 1.3 ClientHello offering only
ffdhe8192 costs the gateway ~100 ms of CPU (X25519: ~1 ms). The gateway offers X25519, P-256
and P-384 unless `tls.groups` says otherwise, `moat audit` flags FFDHE groups, and failed or
abandoned handshakes from one address count towards its ban like failed logins (a silent TCP
connection, e.g. a load balancer's probe, does not)."""

import json
import socket
import ssl
import subprocess

import pytest

import moat_harness as h
from sec_util import unique


def _s_client(moat, certs, groups, extra=()):
    """One openssl s_client handshake offering only `groups`; (returncode, output)."""
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (h.HOST, moat.port), "-tls1_3",
         "-groups", groups, "-cert", certs.path("device1.pem"), "-key",
         certs.path("device1.key"), "-CAfile", certs.ca, "-servername", "localhost"] +
        list(extra), stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def _failed(moat):
    return moat.metric("moat_tls_handshakes_total", result="failed")


def test_ffdhe8192_only_client_hello_fails(moat, certs, broker):
    before = _failed(moat)
    rc, out = _s_client(moat, certs, "ffdhe8192")
    assert rc != 0, "handshake with ffdhe8192 completed:\n" + out[-2000:]
    assert "Server Temp Key: DH" not in out and "FFDHE" not in out.upper().replace(
        "-GROUPS FFDHE", ""), out[-2000:]
    h.wait_until(lambda: _failed(moat) > before, 5, message="the failed handshake counted")
    moat.wait_audit(lambda e: e.get("event") == "protocol_error" and
                    "tls handshake" in e.get("reason", ""), message="protocol_error audit")
    # X25519 still works.
    rc, out = _s_client(moat, certs, "X25519")
    assert rc == 0 and "X25519" in out, out[-2000:]
    assert broker.connection_count() == 0


def _client_hello():
    """The bytes of a complete TLS ClientHello (Python's ssl, memory BIOs: no socket)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _abandon_handshake(moat, hello):
    """Sends a ClientHello, reads the server's first flight, then closes."""
    with socket.create_connection((h.HOST, moat.port), timeout=5) as s:
        s.sendall(hello)
        try:
            s.recv(65536)
        except OSError:
            pass


@pytest.fixture
def ban_moat(moat_factory):
    return moat_factory({"bans": {"auth_failures": 3, "window": "60s", "duration": "5m"}})


def _banned(moat):
    return moat.metric("moat_connections_total", result="banned")


def test_abandoned_handshakes_lead_to_a_ban(ban_moat, certs, broker):
    hello = _client_hello()
    for _ in range(3):
        _abandon_handshake(ban_moat, hello)
    ban = ban_moat.wait_audit(lambda e: e.get("event") == "ban" and
                              e.get("reason") == "tls_handshake_failures",
                              message="a ban for tls_handshake_failures")[0]
    assert ban.get("remote", "").startswith("127.0.0.1"), ban
    before = _banned(ban_moat)
    # The next connection from that address, even a good one, is refused at accept.
    ctx = certs.context("device1")
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection((h.HOST, ban_moat.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"\x10\x00")
                if not s.recv(1):
                    raise ConnectionResetError("closed")
    h.wait_until(lambda: _banned(ban_moat) > before, 5, message="moat_connections_total banned")
    assert broker.connection_count() == 0


def test_failed_ffdhe_handshakes_lead_to_a_ban(ban_moat, certs, broker):
    for _ in range(3):
        rc, out = _s_client(ban_moat, certs, "ffdhe8192")
        assert rc != 0, out[-2000:]
    ban_moat.wait_audit(lambda e: e.get("event") == "ban" and
                        e.get("reason") == "tls_handshake_failures",
                        message="a ban for tls_handshake_failures")


def test_silent_tcp_connections_do_not_ban(ban_moat, certs, broker):
    """Health probes connect and close without a byte: never a handshake failure."""
    for _ in range(5):
        with socket.create_connection((h.HOST, ban_moat.port), timeout=5):
            pass
    c = ban_moat.wire()
    try:
        assert c.connect(unique("after-probes")) == 0
    finally:
        c.close()
    assert not [e for e in ban_moat.audit_events("ban")]


def _config(tmp_path, certs, groups):
    cfg = {
        "listeners": [{"name": "mqtts", "bind": "127.0.0.1:%d" % h.free_port(),
                       "tls": {"cert": certs.path("server.pem"), "key": certs.path("server.key"),
                               "client_ca": certs.ca, "groups": groups}}],
        "backend": {"address": "127.0.0.1:1883"},
        "policy": {"default_roles": ["d"], "roles": {"d": {"publish": ["devices/%u/#"]}}},
    }
    path = str(tmp_path / "moat.yaml")
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=1))  # JSON is YAML; one key per line
    return path


def test_groups_option_validated_with_line(tmp_path, certs):
    path = _config(tmp_path, certs, "X25519:sect163k1")
    r = subprocess.run([h.moat_bin(), "check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    line = [i + 1 for i, l in enumerate(open(path)) if '"groups"' in l][0]
    assert ("%s:%d:" % (path, line)) in r.stderr, r.stderr
    assert "unknown key exchange group" in r.stderr and "sect163k1" in r.stderr, r.stderr


def test_audit_flags_ffdhe_groups(tmp_path, certs):
    path = _config(tmp_path, certs, "X25519:ffdhe8192")
    r = subprocess.run([h.moat_bin(), "audit", "-c", path, "--format", "json"],
                       capture_output=True, text=True, timeout=30)
    hits = [f for f in json.loads(r.stdout) if f["id"] == "ffdhe-groups"]
    assert len(hits) == 1 and hits[0]["severity"] == "medium", r.stdout
    assert "ffdhe8192" in hits[0]["message"]
    # The default configuration has no such finding.
    path = _config(tmp_path, certs, "X25519:P-256:P-384")
    r = subprocess.run([h.moat_bin(), "audit", "-c", path, "--format", "json"],
                       capture_output=True, text=True, timeout=30)
    assert not [f for f in json.loads(r.stdout) if f["id"] == "ffdhe-groups"], r.stdout


def _proxy_v2(src=None):
    """PROXY v2 header: PROXY from `src` (TCP4), or LOCAL when src is None."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if src is None:
        return sig + bytes([0x20, 0x00, 0x00, 0x00])
    body = socket.inet_aton(src) + socket.inet_aton("198.51.100.1") + bytes([0, 1, 0x22, 0xB3])
    return sig + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


def test_handshake_failures_behind_a_balancer(moat_factory, broker):
    """Behind PROXY protocol the device's address is banned, never the balancer's own
    (LOCAL) health checks."""
    moat = moat_factory({"bans": {"auth_failures": 2, "window": "60s", "duration": "5m"}},
                        listener={"proxy_protocol": "v2", "trusted_proxies": ["127.0.0.1/32"]})
    hello = _client_hello()
    for _ in range(4):
        _abandon_handshake(moat, _proxy_v2() + hello)
    for _ in range(2):
        _abandon_handshake(moat, _proxy_v2("203.0.113.9") + hello)
    ban = moat.wait_audit(lambda e: e.get("event") == "ban" and
                          e.get("reason") == "tls_handshake_failures",
                          message="a ban for tls_handshake_failures")
    assert [e.get("remote") for e in ban] == ["203.0.113.9"], ban
