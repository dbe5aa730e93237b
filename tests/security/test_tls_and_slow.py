"""TLS-level attacks and slow clients: client-initiated renegotiation is refused (it would let
a client make the server redo expensive handshakes on one connection), and slowloris clients
that dribble bytes are cut off at handshake_timeout, before any broker connection exists."""

import socket
import subprocess

import pytest

import moat_harness as h
import mqtt_wire as w
from sec_util import assert_still_serves, raw_tls, unique, wait_eof


def _handshakes_ok(moat):
    return moat.metric("moat_tls_handshakes_total", result="ok")


def test_tls12_client_renegotiation_refused(moat, broker, certs):
    before = _handshakes_ok(moat)
    cid = unique("reneg")
    p = subprocess.Popen(
        ["openssl", "s_client", "-connect", "%s:%d" % (h.HOST, moat.port), "-tls1_2",
         "-cert", certs.path("device1.pem"), "-key", certs.path("device1.key"),
         "-CAfile", certs.ca, "-servername", "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p.stdin.write(w.connect_packet(cid))
        p.stdin.flush()
        broker.wait_log(r"New client connected .* as %s " % cid)
        # s_client's "R" command: SSL_renegotiate + a new ClientHello on the live connection.
        p.stdin.write(b"R\n")
        p.stdin.flush()
        rc = p.wait(10)
        out = p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert b"RENEGOTIATING" in out, out[-2000:]
    assert rc != 0, "renegotiation completed:\n%s" % out[-2000:]
    assert b"no renegotiation" in out, out[-2000:]
    # Exactly one full handshake happened on that connection.
    assert _handshakes_ok(moat) == before + 1
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert_still_serves(moat, broker)


@pytest.fixture
def slow_moat(moat_factory):
    return moat_factory({"limits": {"handshake_timeout": "1s"}})


def _dribble(sock, data, interval):
    """Sends `data` one byte per `interval`; returns how many bytes went out before the
    gateway closed the connection (len(data) if it never did)."""
    for i, b in enumerate(data):
        try:
            sock.sendall(bytes([b]))
        except (ConnectionError, OSError):
            return i
        if wait_eof(sock, interval):
            return i + 1
    return len(data)


def test_slowloris_connect_after_tls(slow_moat, broker):
    """TLS done, then CONNECT one byte every 300 ms (~8 s for the whole packet): cut off at
    handshake_timeout (1 s), long before the CONNECT completes."""
    data = w.connect_packet(unique("slowloris"), username="u" * 5)
    s = raw_tls(slow_moat)
    try:
        sent = _dribble(s, data, 0.3)
    finally:
        s.close()
    assert sent < len(data), "the gateway let a slowloris CONNECT complete"
    assert broker.connection_count() == 0, broker.log()
    assert_still_serves(slow_moat, broker)


def test_slowloris_tls_handshake(slow_moat, broker, certs):
    """A ClientHello dribbled one byte every 300 ms over raw TCP is cut off too."""
    # A real ClientHello: let the ssl module produce one into a memory BIO.
    import ssl
    ctx = certs.context("device1")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16"
    sock = socket.create_connection((h.HOST, slow_moat.port), timeout=5)
    try:
        sent = _dribble(sock, hello, 0.3)
    finally:
        sock.close()
    assert sent < len(hello), "the gateway waited for a %d-byte ClientHello at 3 B/s" % len(hello)
    assert broker.connection_count() == 0
    assert_still_serves(slow_moat, broker)


def test_silent_connections_closed(slow_moat, broker):
    """Idle TCP and idle TLS connections are closed at handshake_timeout."""
    tcp = socket.create_connection((h.HOST, slow_moat.port), timeout=5)
    tls = raw_tls(slow_moat)
    try:
        assert wait_eof(tcp, 5), "silent TCP connection kept open"
        assert wait_eof(tls, 5), "TLS connection without CONNECT kept open"
    finally:
        tcp.close()
        tls.close()
    assert broker.connection_count() == 0
    assert_still_serves(slow_moat, broker)


def test_many_slow_clients_do_not_block_a_good_one(slow_moat, broker):
    """While 50 connections sit half-open, a well-behaved client is served at once."""
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection((h.HOST, slow_moat.port), timeout=5)
            s.sendall(b"\x16\x03\x01")
            socks.append(s)
        assert_still_serves(slow_moat, broker)
        for s in socks:
            assert wait_eof(s, 5)
    finally:
        for s in socks:
            s.close()
