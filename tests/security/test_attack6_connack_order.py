"""Attack round 6: the gateway ended a connection with DISCONNECT before the client had its
CONNACK.

Between the broker taking the TCP connection (CONNECT forwarded) and the broker's CONNACK, the
pipeline is already in its Established stage. A reload that took the client's rights away, a
kick, SIGTERM, or a pipelined packet over a limit then sent a v5 DISCONNECT (0x98, 0x8B, ...)
to a client still waiting for its CONNACK, which MQTT 5 forbids (§3.14.0-1: no DISCONNECT
before a successful CONNACK) and which clients take as a protocol error rather than a refusal
(v3 clients got no answer at all). The client must be refused with a CONNACK instead.

The broker here accepts and reads CONNECT but never answers (a stalled broker)."""

import copy
import signal
import socket

import pytest

import moat_harness as h
import mqtt_wire as w
import sec_util as su

V5, V311 = 5, 4


class StalledBroker(socket.socket):
    """Listens; the kernel completes the gateway's connections; nobody answers them."""

    def __init__(self):
        super().__init__()
        self.bind((h.HOST, 0))
        self.listen(64)
        self.port = self.getsockname()[1]


@pytest.fixture
def stalled():
    s = StalledBroker()
    yield s
    s.close()


def _reload(moat, cfg):
    before = moat.metric("moat_config_reloads_total", result="ok")
    moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > before, 15,
                 message="reload ok counted")


def _connect_reaches_broker(stalled):
    """The broker side takes the gateway's connection and its CONNECT, and never answers: the
    gateway now awaits the broker's CONNACK. Returns the socket (kept open)."""
    stalled.settimeout(10)
    b, _ = stalled.accept()
    b.settimeout(10)
    assert b.recv(1) == bytes([0x10]), "the gateway did not forward CONNECT"
    return b


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_reload_before_connack_refuses_with_connack(moat_factory, stalled, version):
    moat = moat_factory({"backend": {"connect_timeout": "30s"}}, broker_=stalled)
    c = moat.wire(version=version)
    try:
        c.send(w.connect_packet(su.unique("pending"), version=version))
        b = _connect_reaches_broker(stalled)
        cfg = copy.deepcopy(moat.config)
        cfg["policy"]["roles"]["tester"] = {"publish": [], "subscribe": []}
        _reload(moat, cfg)
        p = c.read_packet(10)
        assert p.type == w.CONNACK, "expected a CONNACK refusal, got %r" % (p,)
        assert p.body[1] == (0x87 if version == V5 else 5)
        assert c.wait_closed(10) is None
        b.close()
    finally:
        c.close()


def test_drain_before_connack_refuses_with_connack(moat_factory, stalled):
    moat = moat_factory({"backend": {"connect_timeout": "30s"}}, broker_=stalled)
    c = moat.wire(version=V5)
    try:
        c.send(w.connect_packet(su.unique("pending-drain"), version=V5))
        b = _connect_reaches_broker(stalled)
        moat.proc.send_signal(signal.SIGTERM)
        p = c.read_packet(10)
        assert p.type == w.CONNACK, "expected a CONNACK refusal, got %r" % (p,)
        assert p.body[1] == 0x88  # server unavailable
        assert moat.proc.wait(15) == 0
        moat.proc = None
        b.close()
    finally:
        c.close()
