"""Attack round 7: the lingering close cannot be held open.

A refused client that is still sending is read and its bytes discarded until it hangs up, so
the kernel's reset cannot overtake the refusal (DISCONNECT 0x95 and the like). An attacker
could try to turn that into a connection that never closes: refuse itself on purpose (an
oversized packet), then stream for ever. The close-flush timer (2 s) bounds it; meanwhile the
connection keeps its per-address slot (admission is released only when it is gone), and a
good client is served throughout."""

import socket
import ssl
import time

import mqtt_wire as w

V5 = 5


def test_refused_client_streaming_for_ever_is_cut_off(moat_factory, broker):
    moat = moat_factory({"limits": {"max_packet_size": "1KiB", "max_connections_per_ip": 2}})
    bad = moat.wire(version=V5, timeout=10)
    assert bad.connect("linger-bad") == 0
    # A PUBLISH header announcing 100 MiB: refused from the header, body still "coming".
    bad.send(bytes([0x30]) + w.varint(100 * 1024 * 1024) + b"\x00\x01t")
    chunk = b"\0" * 65536
    start = time.monotonic()
    cut = None
    # Bounded: at most 30 s of streaming; the gateway must cut it off long before.
    while time.monotonic() - start < 30:
        try:
            bad.sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            cut = time.monotonic() - start
            break
    assert cut is not None, "the gateway kept reading a refused client for 30 s"
    # The slot is free again and a good client from the same address is served.
    ok = moat.wire(cert="device2", version=V5, timeout=10)
    assert ok.connect("linger-ok") == 0
    assert ok.publish("devices/device2/t", b"x", qos=1) < 0x80


def test_lingering_client_holds_its_address_slot(moat_factory, broker):
    moat = moat_factory({"limits": {"max_packet_size": "1KiB", "max_connections_per_ip": 1}})
    bad = moat.wire(version=V5, timeout=10)
    assert bad.connect("linger-slot") == 0
    bad.send(bytes([0x30]) + w.varint(100 * 1024 * 1024) + b"\x00\x01t")
    bad.sock.sendall(b"\0" * 65536)  # still sending: the gateway lingers
    # While it lingers, the address is still at its limit: a second connection is refused at
    # accept (closed before any CONNACK) rather than admitted beside it.
    try:
        second = moat.wire(cert="device2", version=V5, timeout=5)
        refused = second.connect("linger-second") != 0
    except (EOFError, OSError, socket.timeout, ssl.SSLError):
        refused = True
    assert refused
    bad.sock.close()
    # Once it is gone, the address is served again.
    deadline = time.monotonic() + 10
    while True:
        try:
            again = moat.wire(cert="device2", version=V5, timeout=5)
            if again.connect("linger-again") == 0:
                break
        except (EOFError, OSError, socket.timeout, ssl.SSLError):
            pass
        assert time.monotonic() < deadline, "the address stayed blocked after the client left"
        time.sleep(0.2)
