"""Timers must not be reset or stretched by partial input (#19.5, #19.6): only a complete
packet is keepalive activity (SlowITe, CVE-2020-13849), and backend.connect_timeout covers the
broker's CONNACK, not just the TCP connect. Both run against a small fake broker: Mosquitto
enforces keepalive itself and always answers CONNECT, which would hide the gateway's part."""

import socket
import threading
import time

import pytest

import moat_harness as h
import mqtt_wire as w
import sec_util as u
from moat_harness import V311, V5


class FakeBroker:
    """Accepts TCP on loopback; answers CONNECT with CONNACK 0 when `answer`, else never.
    Reads and discards everything else and never enforces keepalive."""

    def __init__(self, answer):
        self.answer = answer
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((h.HOST, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _serve(self, s):
        s.settimeout(0.2)
        buf = b""
        answered = False
        while not self.stop.is_set():
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            if self.answer and not answered and len(buf) >= 9:
                version = buf[8] if buf[0] == 0x10 else 4
                s.sendall(b"\x20\x03\x00\x00\x00" if version == 5 else b"\x20\x02\x00\x00")
                answered = True

    def _run(self):
        while not self.stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for s in self.conns + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture
def fake_broker():
    made = []

    def make(answer):
        b = FakeBroker(answer)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def test_slowite_partial_publish_does_not_reset_keepalive(moat_factory, fake_broker):
    fb = fake_broker(answer=True)
    moat = moat_factory(broker_=fb)
    c = moat.wire(version=V311)
    cid = u.unique("slowite")
    assert c.connect(cid, keepalive=2) == 0  # the gateway closes after 3 s without a packet
    # A PUBLISH announcing 200 bytes, then one byte at a time: never a complete packet.
    head = w.packet(w.PUBLISH, 0, b"x" * 200)[:2]
    c.send(head)
    closed = False
    for _ in range(40):  # bounded: 20 s of trickling, several times the keepalive deadline
        time.sleep(0.5)
        try:
            c.send(b"a")
        except (OSError, ConnectionError):
            closed = True
            break
        if u.wait_eof(c.sock, 0.01):
            closed = True
            break
    c.close()
    assert closed, "a trickle of partial-packet bytes kept a keepalive-2 client open for 20 s"
    moat.wait_audit(lambda e: e.get("event") == "disconnect" and e.get("client_id") == cid
                    and e.get("reason") == "keepalive_timeout", message="keepalive_timeout audit")


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_broker_that_never_answers_connect(moat_factory, fake_broker, version):
    fb = fake_broker(answer=False)
    moat = moat_factory({"backend": {"connect_timeout": "1s"}}, broker_=fb)
    cids = []
    for _ in range(3):  # repeated CONNACK timeouts mark the broker down
        c = moat.wire(version=version, timeout=20.0)
        cid = u.unique("noconnack")
        cids.append(cid)
        try:
            code = c.connect(cid, keepalive=60)
        except (socket.timeout, EOFError, ConnectionError) as e:
            pytest.fail("no CONNACK from the gateway for a broker that never answers: %r" % e)
        finally:
            c.close()
        assert code == (0x88 if version == V5 else 0x03)
    status, _ = moat.http_get("/healthz")
    assert status == 503, "/healthz still ok after repeated CONNACK timeouts"
    assert moat.metric("moat_backend_up") == 0
    # The session never started: no `connect` event, the close is not a keepalive timeout.
    for e in moat.audit_events():
        if e.get("client_id") in cids:
            assert e.get("event") != "connect", e
            assert e.get("reason") != "keepalive_timeout", e


def test_broker_answer_counts_connect_and_health(moat_factory, fake_broker):
    fb = fake_broker(answer=True)
    moat = moat_factory({"backend": {"connect_timeout": "1s"}}, broker_=fb)
    c = moat.wire(version=V5)
    cid = u.unique("answered")
    assert c.connect(cid) == 0
    moat.wait_audit(lambda e: e.get("event") == "connect" and e.get("client_id") == cid,
                    message="connect audit after CONNACK")
    assert moat.http_get("/healthz")[0] == 200
    c.close()
