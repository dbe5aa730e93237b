"""Attack round: the keepalive fix of #17.6 (3776a56) is bypassed through the pending-acks pause.

A client that neither reads nor sends must meet its keepalive deadline. The gateway treats
any pause other than "the client does not read" as its own doing and refreshes the client's
keepalive clock (onTimer: `clientPause_ & ~kPauseClientQueue`). The pending-acks pause
(more than 4096 SUBSCRIBE filters awaiting the broker) is one such pause, and a client that
does not read can keep it set for ever: the SUBACK it waits for sits at the broker behind the
deliveries the client does not read (the gateway stopped reading the broker for it). So the
client holds its connection, its 256 KiB of buffers and the broker's queue indefinitely."""

import socket
import struct
import time

import moat_harness as h
import mqtt_wire as w
import sec_util as u


def _paused(moat, reason):
    return moat.metric("moat_client_reads_paused_total", reason=reason)


def test_pending_acks_pause_does_not_defeat_keepalive(moat_factory, certs, broker):
    # Room for 4097 filters awaiting the broker (the backlog pause's threshold is 4096).
    moat = moat_factory({"limits": {"max_subscriptions": 10000}})
    cid = u.unique("stuck")
    topic = "flood/" + cid
    ctx = certs.context("device1")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.settimeout(10)
    raw.connect((h.HOST, moat.port))
    c = w.WireClient.__new__(w.WireClient)
    c.version, c.timeout, c.buf = 4, 10.0, bytearray()
    c.sock = ctx.wrap_socket(raw, server_hostname="localhost")
    assert c.connect(cid, keepalive=2) == 0
    assert c.subscribe([(topic, 0)]) == [0]

    # 1. Someone publishes to the client's topic; the client reads nothing: its queue fills.
    pub = u.connected_wire(moat, 4, u.unique("flooder"), cert="device2")
    payload = b"x" * 32768
    queue_pauses = _paused(moat, "client_queue")
    for _ in range(400):  # 12.5 MiB, bounded
        pub.send(w.publish_packet(topic, payload))
    h.wait_until(lambda: _paused(moat, "client_queue") > queue_pauses, 10,
                 message="client queue pause")

    # 2. A SUBSCRIBE of 4097 filters waits in the socket (distinct ones: the gateway merges a
    #    filter named twice into one); the client then reads
    #    just enough for the gateway to resume it once: the SUBSCRIBE is read, forwarded, and
    #    its SUBACK queues at the broker behind the rest of the flood.
    body = struct.pack("!H", 2) + b"".join(w.utf8("%s/%d" % (topic, i)) + b"\x00"
                                           for i in range(4097))
    c.send(w.packet(w.SUBSCRIBE, 2, body))
    backlog_pauses = _paused(moat, "pending_acks")
    deadline = time.monotonic() + 20
    while _paused(moat, "pending_acks") == backlog_pauses and time.monotonic() < deadline:
        c.sock.settimeout(1)
        try:
            c.sock.recv(65536)
        except socket.timeout:
            pass
    assert _paused(moat, "pending_acks") > backlog_pauses, "backlog pause never happened"

    # 3. The client now neither reads nor sends. Keepalive 2 s: closed within 3 s (+slack).
    time.sleep(8)
    closed = "Client %s closed its connection" % cid in broker.log() or \
        "Client %s disconnected" % cid in broker.log()
    pub.close()
    c.abort()
    assert closed, ("a client that neither reads nor sends held its connection past its "
                    "keepalive deadline (pending-acks pause refreshes the clock)")
