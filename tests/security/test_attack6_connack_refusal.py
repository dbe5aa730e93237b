"""Attack round 6: a broker that refuses CONNECT and then does not hang up.

MQTT (3.1.1 §3.2.2.3, 5.0 §3.2.2.2) says the server closes the connection after a CONNACK
with a non-zero code. Before the pipeline refactor the gateway's connect deadline stayed armed
after the refusal and closed the client at the latest there; since the refactor the pipeline
clears every deadline when it sees the refusal (deadline 0), so a broker that stalls after
refusing (or is slow to close) leaves the refused client connected for ever, holding a
connection slot of its address, and whatever it sends next still went to the broker as if it
had logged in. The gateway must end the connection itself once the refusal is passed on."""

import time

import pytest

import mqtt_wire as w
import sec_util as su

V5, V311 = 5, 4


class RefusingBroker(su.ScriptedBrokerBase):
    """Answers every CONNECT with a refusing CONNACK, keeps the socket open, and records every
    packet type it receives afterwards."""

    def __init__(self, version):
        self.version = version
        self.after = []
        super().__init__()

    def _session(self, c):
        c.settimeout(30)
        try:
            self._read_packet(c)  # CONNECT
            if self.version == V5:
                c.sendall(w.packet(w.CONNACK, 0, bytes([0, 0x87, 0])))  # not authorized
            else:
                c.sendall(w.packet(w.CONNACK, 0, bytes([0, 5])))  # not authorized
            for _ in range(1000):  # bounded: stays open, records what still comes
                ptype, _ = self._read_packet(c)
                self.after.append(ptype)
        except (OSError, EOFError, IndexError):
            pass


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_refused_client_is_closed_and_forwards_nothing(moat_factory, version):
    broker = RefusingBroker(version)
    try:
        moat = moat_factory(broker_=broker)
        c = moat.wire(version=version)
        try:
            c.send(w.connect_packet(su.unique("refused"), version=version))
            ack = c.read_packet(10)
            assert ack.type == w.CONNACK
            assert ack.body[1] == (0x87 if version == V5 else 5)
            # The refused client goes on as if it were in.
            try:
                c.send(w.publish_packet("after/refusal", b"x", qos=1, version=version))
            except OSError:
                pass
            assert c.wait_closed(10) is None, "the gateway kept a refused client connected"
        finally:
            c.close()
        time.sleep(0.3)
        assert w.PUBLISH not in broker.after, "a refused client's PUBLISH reached the broker"
    finally:
        broker.close()
