"""The broker is checked too (#20.3, CONTRACT §3): a broker packet Moat cannot decode, a packet
type a broker never sends, or a PUBLISH with an unknown topic alias is never passed on
unchecked. The client is disconnected (v5 DISCONNECT 0x80; a CONNACK 0x80 / v3 0x03 when it
has none yet) and moat_protocol_errors_total{reason="backend_malformed"} counts it.

The broker here is a scripted one on a loopback socket: a real Mosquitto never sends these."""

import struct
import threading

import pytest

import mqtt_wire as w
import sec_util as su

V5, V311 = 5, 4


class ScriptedBroker(su.ScriptedBrokerBase):
    """Accepts gateway connections; answers CONNECT with `connack`, then sends `after`
    (raw bytes) once the first packet after CONNECT (or none: `on_connect`) arrives."""

    def __init__(self):
        self.script = None
        super().__init__()

    def _session(self, c):
        c.settimeout(10)
        connack, after, wait_for_packet = self.script
        try:
            self._read_packet(c)  # CONNECT
            c.sendall(connack)
            if wait_for_packet:
                ptype, body = self._read_packet(c)
                c.sendall(after(ptype, body) if callable(after) else after)
            elif after:
                c.sendall(after)
            while self._read_packet(c):
                pass
        except (OSError, EOFError, IndexError):
            pass


@pytest.fixture
def scripted():
    b = ScriptedBroker()
    yield b
    b.close()


def connack(version, code=0, props=b""):
    if version == V5:
        return w.packet(w.CONNACK, 0, bytes([0, code]) + w.varint(len(props)) + props)
    return w.packet(w.CONNACK, 0, bytes([0, code]))


def publish_bytes(version, topic, payload, props=None):
    return w.publish_packet(topic, payload, version=version, props=props)


ALIAS_MAX = bytes([0x22]) + struct.pack("!H", 10)  # Topic Alias Maximum 10

# name -> (version, connack bytes, bytes after, answer the client's first packet)
CASES = {
    "publish-topic-past-body-v5": (V5, connack(V5), bytes([0x30, 0x04, 0x00, 0x09]) + b"ab",
                                   False),
    "publish-topic-past-body-v311": (V311, connack(V311), bytes([0x30, 0x04, 0x00, 0x09]) + b"ab",
                                     False),
    "publish-wildcard-topic-v5": (V5, connack(V5), publish_bytes(V5, "a/#", b"x"), False),
    "publish-unknown-alias-v5": (V5, connack(V5, props=ALIAS_MAX),
                                 publish_bytes(V5, "", b"x", props=[(w.PROP_TOPIC_ALIAS, 7)]),
                                 False),
    "pingreq-from-broker-v5": (V5, connack(V5), bytes([0xC0, 0x00]), False),
    "subscribe-from-broker-v311": (V311, connack(V311),
                                   w.packet(w.SUBSCRIBE, 2, b"\x00\x01\x00\x01a\x00"), False),
    "bad-remaining-length-v5": (V5, connack(V5), bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
                                False),
    "suback-without-codes-v5": (V5, connack(V5), lambda t, body: bytes([0x90, 0x02]) + body[:2],
                                True),
    "pubrel-bad-flags-v311": (V311, connack(V311), bytes([0x60, 0x02, 0x00, 0x01]), False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broker_packet_not_passed_on(moat_factory, scripted, case):
    version, ack, after, wait = CASES[case]
    scripted.script = (ack, after, wait)
    moat = moat_factory(broker_=scripted)
    before = su.protocol_errors(moat, "backend_malformed")
    c = moat.wire(version=version)
    try:
        assert c.connect(su.unique("bm")) == 0
        if wait:
            c.send(w.subscribe_packet([("a/#", 1)], 1, version))
        seen = []
        reason = None
        try:
            while True:
                p = c.read_packet(10)
                seen.append(p.type)
                if p.type == w.DISCONNECT:
                    reason = p.body[0] if p.body else 0
        except (EOFError, ConnectionError, OSError):
            pass
        # Nothing of the bad packet reached the client; v5 is told why.
        assert seen == ([w.DISCONNECT] if version == V5 else []), seen
        assert reason == (0x80 if version == V5 else None)
    finally:
        c.close()
    su.wait_protocol_error(moat, before, "backend_malformed")


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_malformed_connack_refuses_the_client(moat_factory, scripted, version):
    scripted.script = (w.packet(w.CONNACK, 0, b"\x00"), b"", False)
    moat = moat_factory(broker_=scripted)
    before = su.protocol_errors(moat, "backend_malformed")
    c = moat.wire(version=version)
    try:
        c.send(w.connect_packet(su.unique("bm-connack"), version=version))
        ack = c.read_packet(10)
        assert ack.type == w.CONNACK
        assert ack.body[1] == (0x80 if version == V5 else 0x03)
        assert c.wait_closed(10) is None
    finally:
        c.close()
    su.wait_protocol_error(moat, before, "backend_malformed")


def test_paho_v5_client_told_0x80(moat_factory, scripted):
    """A real client (paho, MQTT 5) is disconnected and gets none of the bad PUBLISH."""
    import paho.mqtt.client as paho

    scripted.script = (connack(V5, props=ALIAS_MAX),
                       publish_bytes(V5, "", b"x", props=[(w.PROP_TOPIC_ALIAS, 7)]), False)
    moat = moat_factory(broker_=scripted)
    before = su.protocol_errors(moat, "backend_malformed")
    got, reasons = [], []
    done = threading.Event()
    c = paho.Client(client_id=su.unique("bm-paho"), protocol=paho.MQTTv5)
    cert, key = moat.certs.client("device1")
    c.tls_set(ca_certs=moat.certs.ca, certfile=cert, keyfile=key)
    c.on_message = lambda *a: got.append(a[2].topic)

    def on_disconnect(client, userdata, rc, props=None):
        reasons.append(getattr(rc, "value", rc))
        done.set()

    c.on_disconnect = on_disconnect
    try:
        c.connect("localhost", moat.port, 60)
        c.loop_start()
        assert done.wait(10), "paho was not disconnected"
    finally:
        c.loop_stop()
    # paho 1.6 reports the lost connection (7), not the server's reason code: the 0x80 itself
    # is asserted byte for byte by the wire-client cases above.
    assert len(reasons) == 1 and got == []
    su.wait_protocol_error(moat, before, "backend_malformed")
