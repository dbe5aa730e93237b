"""Attack round 8: the close paths.

A connection ends in several ways the gateway treats with care: the lingering close (a refused
client that still sends is read and its bytes discarded while the refusal flushes, at most
until the 2 s close timer), and a clean end by the client (a TLS close_notify or a WebSocket
close frame) that arrives behind packets still buffered because reads are paused by a rate
limit: those packets are handled when the pause ends, then the connection closes
(ClientConnection::closeWhenBufferedHandled). An outsider tries to turn these into packets
forwarded that the policy of the moment denies, packets dropped that were sent before the
close, connections and address slots that are never freed, or memory without bound.

Weaknesses found, fixed since (the tests marked WAS A WEAKNESS failed on the gateway then):
- test_ws_pings_before_connect_from_a_client_that_does_not_read: before CONNECT, pongs for a
  client that does not read are queued without bound (checkClientQueue pauses reads only in the
  Established stage): ~90 MiB of RSS per socket in under a second, until handshake_timeout.
- test_disconnect_reaches_a_broker_that_stalls_past_the_close_timer and
  test_will_revoked_by_reload_stays_discarded_when_the_broker_lags: a DISCONNECT waiting in the
  broker connection's write queue is cancelled by the 2 s close timer (closeNow), so a broker
  that lags publishes the will the client discarded, or one a reload revoked.

TLS records are built over memory BIOs (TlsBio) so a test chooses exactly which records share
one TCP write: PUBLISHes and the close_notify behind them arrive in one read, as a device
that publishes and hangs up at once sends them. Loopback only; bounded loops; no timing
thresholds (waits are bounded waits for events)."""

import copy
import os
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import moat_harness as h
import mqtt_wire as w
import sec_util as u
import ws_wire as ws

V5 = 5

THROTTLED = {"limits": {"publish_rate": "12/m", "on_exceed": "throttle"}}  # one per 5 s


# ---------------------------------------------------------------------------------------------
# helpers

class TlsBio:
    """An mTLS client over memory BIOs: records are produced by `records()` and leave in the
    writes the test chooses (`send`). MQTT packets the gateway sends are read with
    read_packet()."""

    def __init__(self, moat, cert="device1", timeout=10.0, port=None):
        self.sock = socket.create_connection((h.HOST, port or moat.port), timeout=timeout)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = moat.certs.context(cert).wrap_bio(self.inc, self.out,
                                                     server_hostname="localhost")
        self.timeout = timeout
        self.plain = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._push()
                self._pull(deadline)
        self._push()

    def _push(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pull(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.inc.write(data)

    def records(self, app=b"", close_notify=False):
        """The TLS bytes of `app` (then a close_notify if asked), not sent yet."""
        if app:
            self.obj.write(app)
        if close_notify:
            try:
                self.obj.unwrap()  # writes close_notify, then wants the peer's
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
        return self.out.read()

    def send(self, raw):
        self.sock.sendall(raw)

    def read_packet(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = _take_packet(self.plain)
            if p:
                return p
            try:
                while True:
                    self.plain += self.obj.read(65536)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                raise EOFError("close_notify")
            p = _take_packet(self.plain)
            if p:
                return p
            self._pull(deadline)

    def connect(self, cid, version=4, **kw):
        self.send(self.records(w.connect_packet(cid, version=version, **kw)))
        p = self.read_packet()
        assert p.type == w.CONNACK, p
        return p.body[1]

    def wait_closed(self, timeout=None):
        """Reads until the gateway closes; the packets it sent meanwhile."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got = []
        try:
            while time.monotonic() < deadline:
                got.append(self.read_packet(max(0.01, deadline - time.monotonic())))
        except (EOFError, ConnectionError, ssl.SSLError):
            return got
        except socket.timeout:
            pass
        raise AssertionError("still open after the deadline; got %r" % got)

    def abort(self):
        """A reset, not a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _take_packet(buf):
    if len(buf) < 2:
        return None
    mult, length, i = 1, 0, 1
    while i < len(buf) and i <= 4:
        b = buf[i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    else:
        return None
    if len(buf) < i + length:
        return None
    first = buf[0]
    body = bytes(buf[i:i + length])
    del buf[:i + length]
    return w.Packet(first >> 4, first & 0x0F, body)


def reload(moat, cfg):
    before = moat.metric("moat_config_reloads_total", result="ok")
    moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > before, 15,
                 message="reload ok counted")


def received(broker, cid):
    """Topics of the PUBLISHes the broker received from `cid`, in order."""
    out = []
    marker = "Received PUBLISH from %s " % cid
    for line in broker.log().splitlines():
        if marker in line:
            out.append(line.split("'")[1])
    return out


def fd_count(moat):
    return len(os.listdir("/proc/%d/fd" % moat.pid))


def active(moat):
    return moat.metric("moat_connections_active")


def ws_moat(moat_factory, overrides=None, plain_ws=None, plain_listener=None):
    """Listener 0: the usual mTLS MQTT listener; plus a plain ws listener at moat.ws_port and a
    wss one (client certificate optional) at moat.wss_port, anonymous allowed, as a browser
    fleet behind a balancer would be."""
    port, tls_port = h.free_port(), h.free_port()
    lst = {"name": "ws", "bind": "127.0.0.1:%d" % port,
           "websocket": plain_ws if plain_ws is not None else {}}
    lst.update(plain_listener or {})
    m = moat_factory(h.deep_merge({"auth": {"methods": ["certificate"], "anonymous": True}},
                                  overrides), start=False, extra_listeners=[lst])
    tls = dict(m.config["listeners"][0]["tls"], require_client_cert=False)
    m.config["listeners"].append({"name": "wss", "bind": "127.0.0.1:%d" % tls_port,
                                  "tls": tls, "websocket": {}})
    m.write_config(m.config)
    h.limit_asan_quarantine(m)  # the ping tests measure RSS
    m.start()
    m.ws_port, m.wss_port = port, tls_port
    for p in (port, tls_port):
        h.wait_until(lambda: h.port_accepts("127.0.0.1", p), message="the ws listeners")
    return m


def plain_ws(moat, **kw):
    return ws.WsWire("127.0.0.1", moat.ws_port, None, **kw)


def tls_ws(moat, **kw):
    return ws.WsWire("127.0.0.1", moat.wss_port, moat.certs.context("device1"), **kw)


def sent_until_blocked(sock, blob, cap, blocked_for=2.0):
    """Writes `blob` until `cap` bytes went or a write blocked for `blocked_for` s (the
    gateway stopped reading); the bytes the kernel took."""
    sent = 0
    sock.settimeout(blocked_for)
    try:
        while sent < cap:
            sock.sendall(blob)
            sent += len(blob)
    except socket.timeout:
        pass
    except OSError:
        pass  # closed by the gateway: it stopped taking bytes too
    return sent


# ---------------------------------------------------------------------------------------------
# close_notify / close frame behind throttled packets


def test_reload_denies_publishes_buffered_behind_close_notify(moat_factory, broker):
    """PUBLISHes and a close_notify in one write from a client throttled to one publish per
    5 s; a SIGHUP then revokes its publish rights. What was buffered behind the pause is judged
    by the policy of the moment it is handled: denied, never forwarded."""
    moat = moat_factory(THROTTLED)
    cid = u.unique("buf-reload")
    c = TlsBio(moat)
    assert c.connect(cid) == 0
    burst = b"".join(w.publish_packet("secret/%d" % i, b"x") for i in range(4))
    c.send(c.records(burst, close_notify=True))
    broker.wait_log(r"Received PUBLISH from %s .*'secret/0'" % cid)
    cfg = copy.deepcopy(moat.config)
    cfg["policy"]["roles"]["tester"]["publish"] = ["ok/#"]
    reload(moat, cfg)
    c.wait_closed(timeout=40)
    # Each one was handled (denied and audited), not dropped with the connection.
    moat.wait_audit(lambda e: e.get("event") == "authz_denied" and e.get("client_id") == cid
                    and e.get("topic") == "secret/3", message="secret/3 denied")
    denied = [e.get("topic") for e in moat.audit_events("authz_denied")
              if e.get("client_id") == cid]
    assert denied == ["secret/1", "secret/2", "secret/3"]
    assert received(broker, cid) == ["secret/0"]


def test_publishes_behind_close_notify_are_delivered_in_order(moat_factory, broker):
    """The same burst without a reload: every PUBLISH sent before the close_notify reaches the
    broker, in order, then the connection ends."""
    moat = moat_factory({"limits": {"publish_rate": "2/s", "on_exceed": "throttle"}})
    cid = u.unique("buf-order")
    c = TlsBio(moat)
    assert c.connect(cid) == 0
    topics = ["order/%d" % i for i in range(6)]
    c.send(c.records(b"".join(w.publish_packet(t, b"x") for t in topics), close_notify=True))
    c.wait_closed(timeout=30)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics


def test_bytes_after_close_notify_are_ignored_not_fatal(moat_factory, broker):
    """Behind the close_notify, in the same write: a second close_notify's worth of garbage
    and raw bytes that look like a PUBLISH. The packets before the close_notify still count;
    nothing after it is forwarded, and the gateway lives on."""
    moat = moat_factory({"limits": {"publish_rate": "2/s", "on_exceed": "throttle"}})
    cid = u.unique("after-cn")
    c = TlsBio(moat)
    assert c.connect(cid) == 0
    topics = ["before/%d" % i for i in range(4)]
    recs = c.records(b"".join(w.publish_packet(t, b"x") for t in topics), close_notify=True)
    # An alert record (close_notify, unencrypted as an attacker would forge it), then a plain
    # MQTT PUBLISH as if TLS were over.
    junk = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00]) + w.publish_packet("after/x", b"x")
    c.send(recs + junk)
    c.wait_closed(timeout=30)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics
    u.assert_still_serves(moat, broker)


@pytest.mark.parametrize("reason,will_expected", [(0x00, False), (0x04, True)],
                         ids=["normal", "with_will"])
def test_disconnect_behind_throttled_publishes(moat_factory, broker, reason, will_expected):
    """v5: PUBLISHes, a DISCONNECT (0x00, or 0x04 'with will'), a PUBLISH after it and a
    close_notify, in one write while throttled. The PUBLISHes before the DISCONNECT reach the
    broker, then the DISCONNECT with its reason (the broker publishes the will only for
    0x04); the PUBLISH after the DISCONNECT is never forwarded."""
    moat = moat_factory({"limits": {"publish_rate": "2/s", "on_exceed": "throttle"}})
    watcher = u.connected_wire(moat, V5, u.unique("will-watch"), cert="device2")
    cid = u.unique("disc-behind")
    assert watcher.subscribe([("wills/%s" % cid, 0)]) == [0]
    c = TlsBio(moat)
    assert c.connect(cid, version=V5, will={"topic": "wills/%s" % cid, "payload": b"gone"}) == 0
    topics = ["pre/%d" % i for i in range(3)]
    burst = b"".join(w.publish_packet(t, b"x", version=V5) for t in topics)
    burst += w.disconnect_packet(V5, reason)
    burst += w.publish_packet("post/disconnect", b"x", version=V5)
    c.send(c.records(burst, close_notify=True))
    c.wait_closed(timeout=30)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics
    wills = [t for t, _ in watcher.publishes(1.5)]
    assert wills == (["wills/%s" % cid] if will_expected else [])


def test_reset_behind_close_notify_while_throttled(moat_factory, broker):
    """PUBLISHes and a close_notify while throttled, then a TCP reset before the pause ends:
    the gateway notices once it reads again, frees the connection (descriptors back to where
    they were, no active connection left) and keeps serving."""
    moat = moat_factory({"limits": {"publish_rate": "2/s", "on_exceed": "throttle"}})
    u.assert_still_serves(moat, broker)  # warm: the worker's lazily made handles exist
    h.wait_until(lambda: active(moat) == 0, 10, message="warm-up connection gone")
    base = fd_count(moat)
    for i in range(5):
        c = TlsBio(moat)
        cid = u.unique("rst-%d" % i)
        assert c.connect(cid) == 0
        c.send(c.records(b"".join(w.publish_packet("rst/%d" % k, b"x") for k in range(4)),
                         close_notify=True))
        c.abort()
    h.wait_until(lambda: active(moat) == 0 and fd_count(moat) <= base, 30,
                 message="reset connections freed")
    u.assert_still_serves(moat, broker)


def test_broker_gone_while_publishes_wait_behind_close_notify(moat_factory, broker):
    """The broker goes away while a client's PUBLISHes wait behind the pause with its
    close_notify: the connection ends (it does not wait for ever for a resume that can no
    longer forward anything) and the gateway survives to serve once the broker is back."""
    moat = moat_factory(THROTTLED)
    cid = u.unique("broker-gone")
    c = TlsBio(moat)
    assert c.connect(cid) == 0
    c.send(c.records(b"".join(w.publish_packet("gone/%d" % k, b"x") for k in range(4)),
                     close_notify=True))
    broker.wait_log(r"Received PUBLISH from %s .*'gone/0'" % cid)
    broker.stop()
    c.wait_closed(timeout=15)
    h.wait_until(lambda: active(moat) == 0, 15, message="connection freed")
    broker.start()
    h.wait_until(lambda: h.port_accepts(h.HOST, broker.port), 10, message="broker back")
    u.assert_still_serves(moat, broker)


def test_keepalive_does_not_expire_while_the_gateway_holds_the_packets(moat_factory, broker):
    """A 2 s keepalive, PUBLISHes held 5 s apart by the throttle, then close_notify: silence
    the gateway causes is not the client's. No keepalive_timeout; everything is delivered."""
    moat = moat_factory(THROTTLED)
    cid = u.unique("ka-held")
    c = TlsBio(moat)
    assert c.connect(cid, keepalive=2) == 0
    topics = ["ka/%d" % i for i in range(3)]
    c.send(c.records(b"".join(w.publish_packet(t, b"x") for t in topics), close_notify=True))
    c.wait_closed(timeout=40)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics
    moat.wait_audit(lambda e: e.get("event") == "disconnect" and e.get("client_id") == cid,
                    message="its disconnect audited")
    reasons = [e.get("reason") for e in moat.audit_events("disconnect")
               if e.get("client_id") == cid]
    assert "keepalive_timeout" not in reasons


# ---------------------------------------------------------------------------------------------
# WebSocket close frames


def test_ws_reload_denies_publishes_buffered_behind_close_frame(moat_factory, broker):
    moat = ws_moat(moat_factory, overrides=THROTTLED)
    cid = u.unique("ws-reload")
    c = plain_ws(moat)
    assert c.connect(cid) == 0
    burst = b"".join(ws.frame(ws.BINARY, w.publish_packet("secret/%d" % i, b"x"))
                     for i in range(3))
    c.send_raw(burst + ws.frame(ws.CLOSE, b"\x03\xe8"))
    broker.wait_log(r"Received PUBLISH from %s .*'secret/0'" % cid)
    cfg = copy.deepcopy(moat.config)
    cfg["policy"]["roles"]["tester"]["publish"] = ["ok/#"]
    reload(moat, cfg)
    assert c.wait_close_frame(timeout=30) == 1000
    assert c.wait_eof(timeout=10)
    assert received(broker, cid) == ["secret/0"]


def test_ws_frames_after_close_frame_are_never_forwarded(moat_factory, broker):
    """Throttled PUBLISHes, a close frame, then more binary frames (a PUBLISH), a ping and a
    second close frame, all in one write: the PUBLISHes before the close are delivered, the
    one after it never, and the close is echoed once."""
    moat = ws_moat(moat_factory, overrides={"limits": {"publish_rate": "2/s",
                                                       "on_exceed": "throttle"}})
    cid = u.unique("ws-after-close")
    c = plain_ws(moat)
    assert c.connect(cid) == 0
    topics = ["wsb/%d" % i for i in range(4)]
    data = b"".join(ws.frame(ws.BINARY, w.publish_packet(t, b"x")) for t in topics)
    data += ws.frame(ws.CLOSE, b"\x03\xe8")
    data += ws.frame(ws.BINARY, w.publish_packet("wsb/after", b"x"))
    data += ws.frame(ws.PING, b"late") + ws.frame(ws.CLOSE, b"\x03\xe8")
    c.send_raw(data)
    assert c.wait_close_frame(timeout=30) == 1000
    assert c.wait_eof(timeout=10)
    assert c.pongs == []
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics


def test_ws_close_frame_split_across_writes_behind_throttled_publishes(moat_factory, broker):
    """The close frame's first bytes arrive in the read that fills the pause, the rest in later
    writes (one byte, then the rest): the buffered PUBLISHes are delivered and the close is
    answered."""
    moat = ws_moat(moat_factory, overrides={"limits": {"publish_rate": "2/s",
                                                       "on_exceed": "throttle"}})
    cid = u.unique("ws-split-close")
    c = plain_ws(moat)
    assert c.connect(cid) == 0
    topics = ["wss/%d" % i for i in range(4)]
    close = ws.frame(ws.CLOSE, b"\x03\xe8bye")
    c.send_raw(b"".join(ws.frame(ws.BINARY, w.publish_packet(t, b"x")) for t in topics)
               + close[:3])
    time.sleep(0.3)  # separate TCP writes (not a threshold: any split must work)
    c.send_raw(close[3:4])
    time.sleep(0.3)
    c.send_raw(close[4:])
    assert c.wait_close_frame(timeout=30) == 1000
    assert c.wait_eof(timeout=10)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_ws_pings_before_connect_from_a_client_that_does_not_read(moat_factory, broker, secure):
    """WAS A WEAKNESS (fixed). After the upgrade and before CONNECT, a client sends ping frames as fast as it
    can and never reads. Each ping is answered with a pong the gateway queues in its own
    memory (StreamWriter copies what the kernel does not take): the client queue's high-water
    mark (ClientConnection::checkClientQueue) pauses reads only in the Established stage, so
    before CONNECT nothing stops the reading until handshake_timeout. Sent: 96 MiB of pings;
    measured: the gateway took all of it and its RSS grew by ~85-90 MiB (glibc keeps it after
    the close). A few such sockets within one handshake_timeout (10 s by default) are
    gigabytes. Expected: reads pause at the client queue's high-water mark in every stage (as
    for an established client, test below: RSS grows by < 1 MiB)."""
    moat = ws_moat(moat_factory, overrides={"limits": {"handshake_timeout": "10s"}})
    c = tls_ws(moat) if secure else plain_ws(moat)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rss0 = moat.rss_kib()
    sent = sent_until_blocked(c.sock, ws.frame(ws.PING, b"p" * 125) * 8000, 96 << 20)
    grown = (moat.rss_kib() - rss0) // 1024
    c.close()
    assert grown < 32, ("the gateway queued pongs for a client that does not read: %d MiB of "
                        "pings taken, RSS grew by %d MiB" % (sent >> 20, grown))


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_ws_pings_from_an_established_client_that_does_not_read(moat_factory, broker, secure):
    """The same flood after CONNECT: reads pause at the client queue's high-water mark."""
    moat = ws_moat(moat_factory)
    c = tls_ws(moat) if secure else plain_ws(moat)
    assert c.connect(u.unique("ws-ping-est")) == 0
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rss0 = moat.rss_kib()
    sent_until_blocked(c.sock, ws.frame(ws.PING, b"p" * 125) * 8000, 96 << 20)
    grown = (moat.rss_kib() - rss0) // 1024
    c.close()
    assert grown < 32


def test_ws_ping_flood_while_throttled(moat_factory, broker):
    """PUBLISHes that trip the throttle, then a ping flood from a client that does not read:
    the paused connection reads nothing more, so no pong piles up."""
    moat = ws_moat(moat_factory, overrides=THROTTLED)
    c = plain_ws(moat)
    assert c.connect(u.unique("ws-ping-held")) == 0
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send_raw(b"".join(ws.frame(ws.BINARY, w.publish_packet("held/%d" % i, b"x"))
                        for i in range(3)))
    rss0 = moat.rss_kib()
    sent_until_blocked(c.sock, ws.frame(ws.PING, b"p" * 125) * 8000, 96 << 20)
    grown = (moat.rss_kib() - rss0) // 1024
    c.close()
    assert grown < 32


# ---------------------------------------------------------------------------------------------
# lingering close: half-open, silent, non-reading and many at once


def _refused_streamer(moat, cid, then):
    """A v5 client refused by its oversized PUBLISH header while its body still streams;
    `then` is what it does next: 'shut_wr' (half-close, never read), 'silent' (keep the socket
    open, send and read nothing more), 'trickle' (keep sending a byte now and then)."""
    c = moat.wire(version=V5, timeout=10)
    assert c.connect(cid) == 0
    c.send(bytes([0x30]) + w.varint(100 * 1024 * 1024) + b"\x00\x01t")
    c.sock.sendall(b"\0" * 65536)
    if then == "shut_wr":
        socket.socket.shutdown(c.sock, socket.SHUT_WR)
    return c


def _settled(moat):
    """The harness's listen probe (a bare TCP connect) holds an address slot until the
    gateway has seen it go: with max_connections_per_ip 1, wait for that first."""
    h.wait_until(lambda: active(moat) == 0, 10, message="the listen probe gone")
    return moat


def _wait_slot_free(moat, cert="device2"):
    deadline = time.monotonic() + 20
    while True:
        try:
            again = moat.wire(cert=cert, version=V5, timeout=5)
            if again.connect(u.unique("slot-again")) == 0:
                return again
        except (EOFError, OSError, socket.timeout, ssl.SSLError, w.WireError):
            pass
        assert time.monotonic() < deadline, "the address stayed blocked"
        time.sleep(0.2)


@pytest.mark.parametrize("then", ["shut_wr", "silent", "trickle"])
def test_refused_client_that_never_reads_frees_its_slot(moat_factory, broker, then):
    """A refused client that half-closes, goes silent or trickles, and never reads the refusal:
    the lingering ends (its hang-up or the close timer) and its address slot comes back while
    its own socket may still be open."""
    moat = _settled(moat_factory({"limits": {"max_packet_size": "1KiB",
                                             "max_connections_per_ip": 1}}))
    bad = _refused_streamer(moat, u.unique("linger-" + then), then)
    if then == "trickle":
        # Bounded: at most 40 bytes, one per 0.25 s; the close timer must end it before.
        for _ in range(40):
            try:
                bad.sock.sendall(b"\0")
            except (OSError, ssl.SSLError):
                break
            time.sleep(0.25)
    ok = _wait_slot_free(moat)
    assert ok.publish("devices/device2/t", b"x", qos=1) < 0x80
    ok.close()
    bad.close()


def test_client_that_stops_reading_while_its_answer_flushes(moat_factory, broker):
    """A subscriber stops reading while deliveries pile up (the gateway pauses at its queue's
    high-water mark), then sends an oversized packet it knows will be refused, and never reads
    again. The refusal cannot leave; keepalive and the close timer still end the connection
    and its address slot is freed."""
    moat = _settled(moat_factory({"limits": {"max_packet_size": "64KiB",
                                             "max_connections_per_ip": 2}}))
    cid = u.unique("stuck-sub")
    sub = moat.wire(version=V5, timeout=10)
    assert sub.connect(cid, keepalive=2) == 0
    assert sub.subscribe([("flood/#", 0)]) == [0]
    sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pub = u.connected_wire(moat, V5, u.unique("flooder"), cert="device2")
    payload = b"f" * 60000
    for _ in range(100):  # 6 MB: far past the queue's high-water mark and the socket buffers
        pub.send(w.publish_packet("flood/x", payload, version=V5))
    pub.close()
    sub.sock.settimeout(2)
    try:
        sub.sock.sendall(bytes([0x30]) + w.varint(10 * 1024 * 1024) + b"\x00\x01t")
    except (OSError, ssl.SSLError):
        pass
    h.wait_until(lambda: active(moat) == 0, 20, message="the stuck subscriber closed")
    ok = [_wait_slot_free(moat) for _ in range(2)]  # both of the address's slots are free
    for c in ok:
        c.close()
    sub.close()


def test_many_lingering_closes_free_every_descriptor(moat_factory, broker):
    """150 refused clients at once, each still streaming, half of them half-closing and the
    rest staying open without reading: every connection ends, the gateway's descriptor count
    returns to its baseline and no connection stays active."""
    moat = moat_factory({"limits": {"max_packet_size": "1KiB"}})
    u.assert_still_serves(moat, broker)
    h.wait_until(lambda: active(moat) == 0, 10, message="warm-up connection gone")
    base = fd_count(moat)
    bad = []
    for i in range(150):
        bad.append(_refused_streamer(moat, u.unique("many-%d" % i),
                                     "shut_wr" if i % 2 else "silent"))
    h.wait_until(lambda: active(moat) == 0, 30, message="every lingering connection gone")
    h.wait_until(lambda: fd_count(moat) <= base, 30, message="descriptors back to baseline")
    for c in bad:
        c.close()
    u.assert_still_serves(moat, broker)


def test_many_429_refusals_that_keep_streaming(moat_factory, broker):
    """Behind a trusted balancer, an address at its limit gets HTTP 429 after the head. 200
    such clients keep sending WebSocket frames (a CONNECT, PUBLISHes) behind the head and never
    read: none of it reaches the broker, all of them are closed, and descriptors return to the
    baseline."""
    moat = ws_moat(moat_factory, plain_ws={"forwarded_for": True},
                   overrides={"limits": {"max_connections_per_ip": 1}},
                   plain_listener={"trusted_proxies": ["127.0.0.1/32"]})
    holder = plain_ws(moat, extra=["X-Forwarded-For: 203.0.113.7"])
    assert holder.connect(u.unique("holder")) == 0
    base = fd_count(moat)
    req, _ = ws.request(extra=["X-Forwarded-For: 203.0.113.7"])
    tail = ws.frame(ws.BINARY, w.connect_packet("smuggled-429")) + b"".join(
        ws.frame(ws.BINARY, w.publish_packet("smuggled/%d" % i, b"x")) for i in range(20))
    socks = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", moat.ws_port), timeout=5)
        s.sendall(req + tail)
        socks.append(s)
    # Every one got its 429 (read only now: they did not read while the gateway lingered).
    answers = 0
    for s in socks:
        s.settimeout(5)
        try:
            if s.recv(64).startswith(b"HTTP/1.1 429"):
                answers += 1
        except OSError:
            pass
    assert answers == len(socks)
    h.wait_until(lambda: fd_count(moat) <= base, 30, message="descriptors back to baseline")
    for s in socks:
        s.close()
    u.assert_not_forwarded(broker, "smuggled-429", marker="smuggled")
    assert holder.publish("ok/holder", b"x", qos=1) == 0


# ---------------------------------------------------------------------------------------------
# more close paths


def test_reload_revoking_the_will_while_disconnect_with_will_waits(moat_factory, broker):
    """v5, throttled: PUBLISHes, DISCONNECT 0x04 ('publish my will') and close_notify wait
    behind the pause; a SIGHUP takes away the will topic. The will must not be published: the
    reload ends the session with a normal DISCONNECT to the broker before the buffered
    DISCONNECT 0x04 is ever handled."""
    moat = moat_factory(THROTTLED)
    watcher = u.connected_wire(moat, V5, u.unique("will-watch"), cert="device2")
    cid = u.unique("will-revoked")
    assert watcher.subscribe([("wills/#", 0)]) == [0]
    c = TlsBio(moat)
    assert c.connect(cid, version=V5, will={"topic": "wills/%s" % cid, "payload": b"gone"}) == 0
    burst = b"".join(w.publish_packet("pre/%d" % i, b"x", version=V5) for i in range(3))
    burst += w.disconnect_packet(V5, 0x04)
    c.send(c.records(burst, close_notify=True))
    broker.wait_log(r"Received PUBLISH from %s .*'pre/0'" % cid)
    cfg = copy.deepcopy(moat.config)
    cfg["policy"]["roles"]["tester"]["publish"] = ["pre/#", "devices/#"]
    cfg["policy"]["roles"]["tester"]["subscribe"] = ["#"]
    reload(moat, cfg)
    c.wait_closed(timeout=30)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert [t for t, _ in watcher.publishes(1.5)] == []
    assert "pre/1" not in received(broker, cid)  # the reload ended it before the next hold


def test_broker_gone_during_a_lingering_close(moat_factory, broker):
    """A refused client still streams (the gateway lingers) and the broker goes away at that
    moment: the connection still ends, nothing crashes, and the gateway serves once the broker
    is back."""
    moat = moat_factory({"limits": {"max_packet_size": "1KiB"}})
    bad = [_refused_streamer(moat, u.unique("linger-bg-%d" % i), "silent") for i in range(5)]
    broker.stop()
    h.wait_until(lambda: active(moat) == 0, 20, message="lingering connections gone")
    for c in bad:
        c.close()
    broker.start()
    h.wait_until(lambda: h.port_accepts(h.HOST, broker.port), 10, message="broker back")
    u.assert_still_serves(moat, broker)


def test_bytes_in_later_writes_after_close_notify(moat_factory, broker):
    """After the write that holds PUBLISHes and close_notify, the client keeps writing (junk
    records, a forged PUBLISH in clear) while the gateway still holds its packets: they are
    not read until the held packets are handled, then discarded by the lingering close."""
    moat = moat_factory({"limits": {"publish_rate": "1/s", "on_exceed": "throttle"}})
    cid = u.unique("later-junk")
    c = TlsBio(moat)
    assert c.connect(cid) == 0
    topics = ["held/%d" % i for i in range(3)]
    c.send(c.records(b"".join(w.publish_packet(t, b"x") for t in topics), close_notify=True))
    for i in range(5):  # bounded: 5 small writes
        try:
            c.send(bytes([0x17, 0x03, 0x03, 0x00, 0x10]) + os.urandom(16)
                   + w.publish_packet("held/forged%d" % i, b"x"))
        except OSError:
            break
        time.sleep(0.2)
    c.wait_closed(timeout=30)
    broker.wait_log(r"Client %s (closed its connection|disconnected)" % cid)
    assert received(broker, cid) == topics


def _backend_send_q(broker_port):
    """The largest Send-Q among established sockets to the broker (the gateway's side)."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "dst",
                          "127.0.0.1:%d" % broker_port], capture_output=True, text=True).stdout
    qs = [int(line.split()[1]) for line in out.splitlines() if line.strip()]
    return max(qs) if qs else 0


def _fill_path_to_stalled_broker(dev, broker):
    """PUBLISHes from `dev` until the gateway's socket towards the stopped broker stops taking
    bytes (its Send-Q no longer grows): what the gateway forwards next waits in its own queue."""
    chunk = w.publish_packet("stall/x", b"s" * 16000)
    last, same = -1, 0
    for _ in range(2000):  # bounded: at most 32 MB
        dev.send(chunk)
        time.sleep(0.01)
        q = _backend_send_q(broker.port)
        same = same + 1 if q == last and q > (1 << 20) else 0
        last = q
        if same >= 3:
            return
    raise AssertionError("could not fill the path to the stalled broker")


def _will_device_and_watcher(moat, prefix):
    """A v5 watcher subscribed to wills/# and a v3.1.1 device holding a will on wills/<id>."""
    watcher = u.connected_wire(moat, V5, u.unique(prefix + "-watch"), cert="device2")
    assert watcher.subscribe([("wills/#", 0)]) == [0]
    cid = u.unique(prefix + "-dev")
    dev = moat.wire(version=4, timeout=10)
    assert dev.connect(cid, will={"topic": "wills/%s" % cid, "payload": b"gone"}) == 0
    return watcher, dev, cid


def _wills_after_the_broker_let_go(broker, watcher, cid):
    """Once the broker has ended the device's connection: the will topics the watcher got."""
    broker.wait_log(r"Client %s (disconnected|closed its connection)" % cid, timeout=20)
    return [t for t, _ in watcher.publishes(2.0)]


def test_disconnect_reaches_a_broker_that_stalls_past_the_close_timer(moat_factory, broker):
    """WAS A WEAKNESS (fixed; needs a stalled broker). A device with a will publishes while the broker is
    stalled (SIGSTOP: a GC pause, a disk sync, an overloaded host) until the kernel buffers
    towards the broker are full, then sends DISCONNECT (normal: 'discard my will'). The
    gateway queues the DISCONNECT behind the backlog, closes the client side, and when the
    close-flush timer (2 s, ConnectionClose.cpp kCloseFlushMs) fires, closeNow() closes the
    broker connection with the DISCONNECT still in its user-space write queue
    (closeBackendAfterFlush's uv_shutdown is cancelled). The broker, resumed 4 s later, sees
    the connection end without DISCONNECT and publishes the will the client cancelled
    (MQTT-3.1.2-8 / 3.14.4-3 say it must be discarded). The same path carries the DISCONNECT
    0x00 that a reload sends to make the broker discard a will it revoked. Expected: a
    DISCONNECT already accepted from the client (or made by the gateway to drop a will) is
    delivered however long the broker side takes to drain, or the broker connection is kept
    until it is (the client side can still close at 2 s)."""
    moat = moat_factory()
    watcher, dev, cid = _will_device_and_watcher(moat, "stall")
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        _fill_path_to_stalled_broker(dev, broker)
        dev.send(w.disconnect_packet(4))
        dev.wait_closed(timeout=10)  # the gateway answered the DISCONNECT by closing
        time.sleep(4)  # the broker stays stalled past the close timer (the attack, no assert)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    wills = _wills_after_the_broker_let_go(broker, watcher, cid)
    delivered = ("Received DISCONNECT from %s" % cid) in broker.log()
    assert delivered and wills == [], (
        "DISCONNECT delivered to the broker: %s; wills published: %r" % (delivered, wills))


def test_will_revoked_by_reload_stays_discarded_when_the_broker_lags(moat_factory, broker):
    """WAS A WEAKNESS (fixed; same path, a policy consequence). A device holds a will on wills/…; the
    broker lags (stopped here) while the device's own publishes fill the path to it; the
    operator revokes wills/# (SIGHUP). The gateway ends the session with DISCONNECT 0x00 to the
    broker so that it discards the will (ConnectionPipeline::applyOptions, WillDenied) — but
    that DISCONNECT waits behind the backlog and is cancelled by the 2 s close timer. The
    broker, once it catches up, publishes the will the new policy denies. Expected: no will
    on a revoked topic is ever published."""
    moat = moat_factory()
    watcher, dev, cid = _will_device_and_watcher(moat, "rv")
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        _fill_path_to_stalled_broker(dev, broker)
        cfg = copy.deepcopy(moat.config)
        cfg["policy"]["roles"]["tester"]["publish"] = ["stall/#", "sec/#", "devices/#"]
        reload(moat, cfg)
        moat.wait_audit(lambda e: e.get("event") == "authz_denied" and e.get("action") == "will"
                        and e.get("client_id") == cid, message="will revoked by the reload")
        dev.wait_closed(timeout=10)
        time.sleep(4)  # the broker stays stalled past the close timer (the attack, no assert)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    wills = _wills_after_the_broker_let_go(broker, watcher, cid)
    assert wills == [], "a will the reload revoked was published: %r" % wills
