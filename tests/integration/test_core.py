"""Gateway core: real Mosquitto behind `moat run`, real TLS clients, mTLS everywhere."""

import os
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import moat_harness as h
import mqtt_wire as w
from moat_harness import V311, V5, connected


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_to_mosquitto_sub(moat, broker, subs, version, qos):
    sub = subs(moat, "cli/%d/%d" % (version, qos), 1, qos=qos, version=version)
    sub.wait_subscribed(broker)
    r = h.mosquitto_pub(moat, "cli/%d/%d" % (version, qos), "hello-%d" % qos, qos=qos,
                        version=version, cert="device2")
    assert r.returncode == 0, r.stderr
    rc, out, err = sub.result()
    assert rc == 0, err
    assert out == b"hello-%d\n" % qos


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_retained_message(moat, subs, version):
    r = h.mosquitto_pub(moat, "retained/x", "kept", qos=1, version=version, extra=["-r"])
    assert r.returncode == 0, r.stderr
    sub = subs(moat, "retained/#", 1, qos=1, version=version, extra=["-v"])
    rc, out, err = sub.result()
    assert rc == 0, err
    assert out == b"retained/x kept\n"


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_payload_sizes_byte_exact(moat_factory, clients, version):
    moat = moat_factory({"limits": {"max_packet_size": "2MiB"}})
    sub = connected(clients, moat, version=version)
    assert sub.subscribe("blob/#", qos=1) in ([1], [0x01])
    pub = connected(clients, moat, version=version, cert="device2")
    sizes = [0, 1, 100 * 1024, 1024 * 1024]
    payloads = [os.urandom(n) for n in sizes]
    for i, p in enumerate(payloads):
        pub.publish("blob/%d" % i, p, qos=1, timeout=20)
    for i, p in enumerate(payloads):
        m = sub.get(20)
        assert m is not None, "payload %d (%d bytes) not delivered" % (i, len(p))
        assert m.topic == "blob/%d" % i
        assert m.payload == p, "payload %d corrupted (%d bytes received, %d sent)" % (
            i, len(m.payload), len(p))


def test_burst_10000_qos0_in_order(moat, clients):
    sub = connected(clients, moat)
    assert sub.subscribe("burst/t") == [0]
    pub = connected(clients, moat, cert="device2")
    n = 10000
    for i in range(n):
        pub.c.publish("burst/t", b"%d" % i, 0)
    got = []
    # Bounded by progress, not by speed: fail only if nothing arrives for 10 s.
    while len(got) < n:
        m = sub.get(10)
        assert m is not None, "stalled after %d of %d messages" % (len(got), n)
        got.append(int(m.payload))
    assert got == list(range(n))


def test_2000_qos1_to_mosquitto_sub(moat, broker, clients, subs):
    sub = subs(moat, "q1/t", 2000, qos=1, wait=30)
    sub.wait_subscribed(broker)
    pub = connected(clients, moat, cert="device2")
    pub.c.max_inflight_messages_set(200)
    infos = [pub.c.publish("q1/t", b"m%04d" % i, 1) for i in range(2000)]
    pub.wait_published(infos[-1], timeout=30)
    rc, out, err = sub.result(timeout=40)
    assert rc == 0, err
    lines = out.split(b"\n")[:-1]
    assert len(lines) == 2000
    assert lines == [b"m%04d" % i for i in range(2000)]


def test_150_concurrent_tls_clients(moat):
    n = 150

    def session(i):
        c = moat.wire(cert="device1" if i % 2 else "device2", timeout=20)
        try:
            assert c.connect("conc-%d" % i) == 0
            assert c.subscribe([("conc/%d" % i, 1)]) == [1]
            return c
        except Exception:
            c.close()
            raise

    with ThreadPoolExecutor(max_workers=25) as pool:
        conns = list(pool.map(session, range(n)))
    try:
        # All 150 sessions are open at once; each one publishes and receives its own message.
        def exchange(i):
            c = conns[i]
            assert c.publish("conc/%d" % i, b"own-%d" % i, qos=1) == 0
            got = c.pending_publishes or []
            while not got:
                got = [c.read_packet(20)]
                if got[0].type != w.PUBLISH:
                    got = []
            assert w.decode_publish(got[0], 4) == ("conc/%d" % i, b"own-%d" % i)

        with ThreadPoolExecutor(max_workers=25) as pool:
            list(pool.map(exchange, range(n)))
        assert moat.metric("moat_connections_active") >= n
    finally:
        for c in conns:
            c.close()


def _wait_eof(sock, timeout):
    sock.settimeout(timeout)
    try:
        data = sock.recv(1024)
        return data == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def test_no_broker_connection_before_tls_and_connect(moat_factory, broker, certs):
    moat = moat_factory({"limits": {"handshake_timeout": "1s"}})
    # 1. TCP only, nothing sent.
    tcp = socket.create_connection((h.HOST, moat.port), timeout=5)
    # 2. TLS completed, no CONNECT.
    tls = certs.context("device1").wrap_socket(
        socket.create_connection((h.HOST, moat.port), timeout=5), server_hostname="localhost")
    # 3. TLS completed, half a CONNECT.
    half = certs.context("device1").wrap_socket(
        socket.create_connection((h.HOST, moat.port), timeout=5), server_hostname="localhost")
    half.sendall(w.connect_packet("half")[:7])
    try:
        for s, what in ((tcp, "silent TCP"), (tls, "TLS without CONNECT"),
                        (half, "partial CONNECT")):
            assert _wait_eof(s, 5), "gateway did not close the %s connection" % what
        assert broker.connection_count() == 0, broker.log()
    finally:
        for s in (tcp, tls, half):
            s.close()
    # The gateway still serves afterwards.
    c = moat.wire()
    assert c.connect("after-timeouts") == 0
    c.close()
    broker.wait_log(r"New client connected .* as after-timeouts")


def _tls_refused(certs, port, cert, verify_server=True):
    """True when the gateway refuses the client's TLS (at the handshake, or right after it:
    with TLS 1.3 the client learns of the refusal on its first read)."""
    ctx = certs.context(cert, verify=verify_server)
    if cert == "rogue":
        ctx = certs.context(None)
        ctx.load_cert_chain(certs.path("rogue.pem"), certs.path("rogue.key"))
    raw = socket.create_connection((h.HOST, port), timeout=5)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    try:
        s.sendall(w.connect_packet("refused-tls"))
        s.settimeout(5)
        data = s.recv(16)
        return data == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def test_rogue_client_cert_refused(moat, broker, certs):
    assert _tls_refused(certs, moat.port, "rogue")
    assert broker.connection_count() == 0
    h.wait_until(lambda: moat.metric("moat_tls_handshakes_total", result="failed") >= 1, 5,
                 message="moat_tls_handshakes_total{result=failed}")


def test_no_client_cert_refused_when_required(moat, broker, certs):
    assert _tls_refused(certs, moat.port, None)
    assert broker.connection_count() == 0


def test_paho_with_rogue_cert_gets_no_connack(moat, clients):
    c = clients(moat, cert="rogue")
    assert c.connect(timeout=3) is None


@pytest.mark.parametrize("version,code", [(V5, 0x88), (V311, 3)], ids=["v5", "v311"])
def test_broker_down_connack_server_unavailable(moat, broker, version, code):
    broker.stop()
    c = moat.wire(version=version)
    try:
        assert c.connect("while-down") == code
        c.wait_closed()
    finally:
        c.close()


def test_broker_restart_clients_reconnect(moat, broker, clients):
    sub = connected(clients, moat)
    sub.subscribe("restart/t", qos=1)
    broker.restart()
    # The gateway must drop the client side when the broker side goes away.
    assert sub.disconnected.wait(10), "client still connected after the broker restarted"
    sub.close()
    sub2 = connected(clients, moat)
    assert sub2.subscribe("restart/t", qos=1) == [1]
    pub = connected(clients, moat, cert="device2")
    pub.publish("restart/t", b"again", qos=1)
    m = sub2.get(10)
    assert m is not None and m.payload == b"again"


@pytest.mark.parametrize("mode,username,expect", [
    ("identity", "alice", "u'device1'"),
    # passthrough forwards the device's own username, which (no password proving it) must be
    # the certificate identity: a foreign one is refused (tests/security/test_unproven_forwarding)
    ("passthrough", "device1", "u'device1'"),
    ("strip", "alice", None),
])
def test_backend_credentials(moat_factory, broker, clients, mode, username, expect):
    # The username is not a factor here (certificate only); keep the match rule out of it.
    moat = moat_factory({"backend": {"credentials": mode},
                         "auth": {"username_must_match_cert": False}})
    c = connected(clients, moat, client_id="creds-" + mode, username=username)
    assert c.subscribe("x") == [0]
    line = broker.wait_log(r"New client connected .* as creds-%s .*" % mode).group(0)
    if expect:
        assert expect in line, line
    else:
        assert "u'" not in line, line


def test_slow_subscriber_memory_bounded(moat_factory, clients, certs):
    moat = moat_factory(start=False)
    h.limit_asan_quarantine(moat)
    moat.start()
    slow = moat.wire(timeout=10)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert slow.connect("slow-sub") == 0
    assert slow.subscribe([("slow/#", 0)]) == [0]
    pub = moat.wire(cert="device2", timeout=10)
    assert pub.connect("fast-pub") == 0
    base = moat.rss_kib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], moat.rss_kib())
            except (OSError, ValueError):
                return
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    chunk = os.urandom(64 * 1024)
    sent = 0
    try:
        # ~50 MiB at QoS 0. The gateway may push back on the publisher too (that is also a
        # bounded-memory answer): stop sending if it does for 10 s.
        for i in range(800):
            try:
                pub.send(w.publish_packet("slow/t", chunk))
                sent += 1
            except socket.timeout:
                break
        # Let whatever is in flight reach the gateway before the last samples.
        time.sleep(1.0)
    finally:
        done.set()
        t.join(2)
    grown_mib = (peak[0] - base) / 1024
    print("slow subscriber: sent %d x 64 KiB, RSS %d -> peak %d KiB" % (sent, base, peak[0]))
    assert grown_mib < 64, "gateway RSS grew by %.1f MiB (sent %d x 64 KiB)" % (grown_mib, sent)
    # Resume reading: the subscriber gets messages again, and a new pair works.
    slow.sock.settimeout(10)
    p = slow.read_packet(10)
    assert p.type == w.PUBLISH
    slow.close()
    pub.close()
    sub = connected(clients, moat)
    sub.subscribe("after/slow")
    p2 = connected(clients, moat, cert="device2")
    p2.publish("after/slow", b"still serving", qos=1)
    m = sub.get(10)
    assert m is not None and m.payload == b"still serving"


def test_sigterm_drains_v5_gets_0x8b(moat, broker):
    c5 = moat.wire(version=5)
    assert c5.connect("drain-v5") == 0
    c3 = moat.wire(version=4)
    assert c3.connect("drain-v3") == 0
    moat.proc.send_signal(15)
    assert c5.wait_closed(8) == 0x8B
    assert c3.wait_closed(8) is None
    assert moat.proc.wait(8) == 0, moat.stderr()
    # Nothing new is accepted after the signal.
    assert not h.port_accepts(h.HOST, moat.port)


def test_will_published_on_tcp_drop_not_on_disconnect(moat, broker, clients):
    watcher = connected(clients, moat, cert="device2")
    watcher.subscribe("wills/#", qos=1)
    will = {"topic": "wills/dropped", "payload": b"gone", "qos": 1}
    c = moat.wire()
    assert c.connect("will-drop", will=will) == 0
    c.abort()
    m = watcher.get(10)
    assert m is not None and (m.topic, m.payload) == ("wills/dropped", b"gone")

    clean = moat.wire()
    assert clean.connect("will-clean", will=dict(will, topic="wills/clean")) == 0
    clean.send(w.disconnect_packet())
    clean.close()
    broker.wait_log(r"Client will-clean disconnected")
    watcher.expect_none(1.0)


def test_plaintext_listener_anonymous(moat_factory, broker, subs):
    moat = moat_factory({"auth": {"anonymous": True, "methods": ["certificate"]}},
                        listener={"tls": None})
    assert not moat.tls
    sub = subs(moat, "plain/t", 1, qos=1)
    sub.wait_subscribed(broker)
    r = h.mosquitto_pub(moat, "plain/t", "no tls", qos=1)
    assert r.returncode == 0, r.stderr
    rc, out, err = sub.result()
    assert rc == 0, err
    assert out == b"no tls\n"


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_listener(moat_factory, clients, broker):
    port = h.free_port("::1")
    moat = moat_factory(listener={"bind": "[::1]:%d" % port})
    assert moat.port == port
    c = moat.wire(host="::1")
    assert c.connect("v6-client") == 0
    assert c.subscribe([("v6/t", 1)]) == [1]
    assert c.publish("v6/t", b"over v6", qos=1) == 0
    p = c.expect(w.PUBLISH) if not c.pending_publishes else c.pending_publishes[0]
    assert w.decode_publish(p, 4) == ("v6/t", b"over v6")
    c.close()


def test_backend_host_name(moat_factory, clients, tmp_path):
    """backend.address may be a host name (a Kubernetes Service): resolved by the main loop
    at start and on every health-check tick, never per connection on a worker. The broker
    listens on every address "localhost" may resolve to here, so whichever comes first works."""
    d = tmp_path / "named-broker"
    d.mkdir()
    b = h.Mosquitto(str(d))
    if _has_ipv6_loopback():
        with open(b.conf, "a") as f:
            f.write("listener %d ::1\n" % b.port)
    b.start()
    try:
        moat = moat_factory({"backend": {"address": "localhost:%d" % b.port,
                                         "health_check_interval": "100ms"}}, broker_=b)
        for i in range(3):  # several connections, across health-check refreshes
            c = connected(clients, moat, client_id="named-%d" % i)
            c.subscribe("named/t", qos=1)
            c.publish("named/t", b"via a host name %d" % i, qos=1)
            m = c.get(10)
            assert m is not None and m.payload == b"via a host name %d" % i
            time.sleep(0.15)
        assert "does not resolve" not in moat.stderr()
        assert moat.http_get("/healthz")[0] == 200
    finally:
        b.stop()


def test_metrics_and_healthz(moat, broker, clients):
    c = connected(clients, moat)
    c.subscribe("m/t")
    c.publish("m/t", b"x", qos=1)
    assert c.get(10) is not None
    assert moat.metric("moat_connections_active", listener="mqtts") >= 1
    assert moat.metric("moat_connections_total", listener="mqtts", result="accepted") >= 1
    assert moat.metric("moat_tls_handshakes_total", result="ok") >= 1
    # Per-packet counters may be published in batches: poll, bounded.
    for direction in ("client_to_broker", "broker_to_client"):
        h.wait_until(lambda: moat.metric("moat_packets_total", direction=direction,
                                         type="PUBLISH") >= 1, 10,
                     message="moat_packets_total{direction=%s,type=PUBLISH}" % direction)
        h.wait_until(lambda: moat.metric("moat_bytes_total", direction=direction) >= 3, 10,
                     message="moat_bytes_total{direction=%s}" % direction)
    assert moat.metric("moat_auth_total", method="certificate", result="success") >= 1
    assert moat.metric("moat_certificate_expiry_seconds", listener="mqtts") > 86400


def test_healthz_follows_broker(moat_factory, broker):
    """§4: 200 while the gateway can reach the broker, 503 otherwise, with no client
    traffic needed to find out."""
    moat = moat_factory({"backend": {"health_check_interval": "200ms"}})
    assert moat.http_get("/healthz")[0] == 200
    broker.stop()
    h.wait_until(lambda: moat.http_get("/healthz")[0] == 503, 10, message="healthz 503")
    broker.start()
    h.wait_until(lambda: moat.http_get("/healthz")[0] == 200, 10, message="healthz 200 again")


def test_audit_connect_event(moat, clients):
    connected(clients, moat, client_id="audited-1").disconnect()
    ev = moat.wait_audit(lambda e: e.get("event") == "connect"
                         and e.get("client_id") == "audited-1")[0]
    assert ev["identity"] == "device1"
    assert ev["protocol"] == "3.1.1"
    assert ev["listener"] == "mqtts"
    assert ev["remote"].startswith("127.0.0.1:")
    assert ev["ts"].endswith("Z")


@pytest.mark.parametrize("version,proto,label", [(3, "p1", "3.1"), (V311, "p2", "3.1.1"),
                                                 (V5, "p5", "5.0")], ids=["v31", "v311", "v5"])
def test_broker_sees_client_protocol_version(moat, broker, clients, version, proto, label):
    cid = "proto-%s" % label
    c = connected(clients, moat, version=version, client_id=cid)
    assert c.subscribe("proto/t", qos=1) == [1]
    c.publish("proto/t", b"v", qos=1)
    m = c.get(10)
    assert m is not None and m.payload == b"v"
    line = broker.wait_log(r"as %s \(%s," % (re.escape(cid), proto)).group(0)
    assert line
    ev = moat.wait_audit(lambda e: e.get("event") == "connect" and e.get("client_id") == cid)
    assert ev[0]["protocol"] == label


@pytest.mark.parametrize("tickets", [True, False])
def test_session_tickets_on_and_off(moat_factory, tickets):
    """tls.session_tickets: a ticket arrives with the CONNACK and resumes the next connection;
    with false no ticket is issued and every connection is a full handshake."""
    moat = moat_factory(tls={"session_tickets": tickets})
    ctx = moat.certs.context("device1")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    first = w.WireClient(h.HOST, moat.port, ctx, 5, timeout=5)
    assert first.connect("tickets-first") == 0
    session = first.sock.session
    first.close()
    assert session.has_ticket == tickets
    raw = socket.create_connection((h.HOST, moat.port), timeout=5)
    second = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    try:
        assert second.session_reused == tickets
    finally:
        second.close()
