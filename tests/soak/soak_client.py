"""asyncio MQTT 3.1.1 / 5 clients of the soak: one persistent-session connection each, with
QoS 1 and QoS 2 state kept across reconnects as a real device keeps it (unacknowledged
publishes are sent again with DUP, a QoS 2 publish past PUBREC continues with PUBREL, an
incoming QoS 2 packet id is held until PUBREL so a redelivery is recognised as such).

Packet bytes come from tests/integration/mqtt_wire.py. Every wait is bounded."""

import asyncio
import random
import ssl
import struct
import time

import mqtt_wire as w

SESSION_EXPIRY = 0x11
IO_ERRORS = (OSError, EOFError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.TimeoutError,
             IndexError, struct.error)


async def read_packet(reader):
    head = await reader.readexactly(2)
    length, mult, b = head[1] & 0x7F, 128, head[1]
    while b & 0x80:
        b = (await reader.readexactly(1))[0]
        length += (b & 0x7F) * mult
        mult *= 128
    body = await reader.readexactly(length) if length else b""
    return head[0] >> 4, head[0] & 0x0F, body


def publish_fields(flags, body, version):
    tlen = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tlen].decode()
    off = 2 + tlen
    qos = (flags >> 1) & 3
    pid = 0
    if qos:
        pid = struct.unpack("!H", body[off:off + 2])[0]
        off += 2
    if version == 5:
        plen, off = w.decode_varint(body, off)
        off += plen
    return topic, qos, pid, body[off:]


class Out:
    __slots__ = ("topic", "payload", "qos", "meta", "state", "sent")

    def __init__(self, topic, payload, qos, meta):
        self.topic, self.payload, self.qos, self.meta = topic, payload, qos, meta
        self.state = "pub"
        self.sent = time.monotonic()


class Peer:
    """One client identity with a persistent session; run() reconnects until stopped."""

    keepalive = 60
    max_pending = 20

    def __init__(self, soak, name, version, ctx, src, username=None, password=None,
                 prefer_b=False):
        self.soak, self.name, self.version, self.ctx, self.src = soak, name, version, ctx, src
        self.username, self.password, self.prefer_b = username, password, prefer_b
        self.pending = {}
        self.incoming_q2 = set()
        self.next_pid = 0
        self.writer = None
        self.online = False
        self.epoch = 0
        self.stopping = False
        self.connects = 0
        self.refusals = {}
        self.session_lost = 0
        self.disconnect_reasons = {}
        self.last_sent = 0.0
        self.suback = None
        self.subscribed_once = False
        self.paused = None  # an asyncio.Event that is clear while reading is paused

    # --- overridables ---
    filters = ()

    def on_message(self, topic, qos, payload):
        pass

    def on_ack(self, out, code):
        pass

    def on_duplicate_q2(self, topic, payload):
        pass

    # --- helpers ---
    def alloc_pid(self):
        for _ in range(65535):
            self.next_pid = self.next_pid % 65535 + 1
            if self.next_pid not in self.pending:
                return self.next_pid
        raise RuntimeError("no free packet id")

    def send(self, data):
        if self.writer is not None and self.online:
            try:
                self.writer.write(data)
                self.last_sent = time.monotonic()
            except (OSError, RuntimeError):
                pass

    def publish(self, topic, payload, qos, meta):
        """Queues and sends one publish; False when not connected or too much is in flight."""
        if not self.online or len(self.pending) >= self.max_pending:
            return False
        pid = self.alloc_pid()
        out = Out(topic, payload, qos, meta)
        self.pending[pid] = out
        self.send(w.publish_packet(topic, payload, qos, packet_id=pid, version=self.version))
        return True

    def _count(self, table, key):
        table[key] = table.get(key, 0) + 1

    # --- connection ---
    async def _open(self):
        host, port = self.soak.pick_target(self)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=self.ctx, server_hostname="localhost", local_addr=(self.src, 0),
            ssl_handshake_timeout=15), 20)
        props = [(SESSION_EXPIRY, 0xFFFFFFFF)] if self.version == 5 else None
        writer.write(w.connect_packet(self.name, version=self.version, username=self.username,
                                      password=self.password, keepalive=self.keepalive,
                                      clean=False, props=props))
        try:
            ptype, _, body = await asyncio.wait_for(read_packet(reader), 20)
        except BaseException:
            writer.close()
            raise
        return reader, writer, ptype, body

    async def connect_once(self):
        try:
            reader, writer, ptype, body = await self._open()
        except IO_ERRORS as e:
            self._count(self.refusals, type(e).__name__)
            return None
        if ptype != w.CONNACK or len(body) < 2 or body[1] != 0:
            code = body[1] if ptype == w.CONNACK and len(body) >= 2 else "no-connack"
            self._count(self.refusals, code)
            writer.close()
            return None
        return reader, writer, bool(body[0] & 1)

    async def run(self):
        backoff = 0.5
        lost = False
        while not self.stopping:
            if lost:
                # A lost connection (broker restart, replica stopped) is followed by a
                # reconnect at a random point of the fleet's spread: no thundering herd.
                await asyncio.sleep(random.uniform(0, self.soak.reconnect_spread))
                lost = False
            got = await self.connect_once()
            if got is None:
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, self.soak.max_backoff)
                continue
            backoff = 0.5
            reader, self.writer, present = got
            self.online = True
            self.epoch += 1
            self.connects += 1
            self.soak.on_connack(self)
            if not present:
                self.incoming_q2.clear()
                if self.subscribed_once:
                    self.session_lost += 1
            reader_task = asyncio.ensure_future(self._reader(reader))
            ping_task = asyncio.ensure_future(self._pinger())
            try:
                if self.filters and (not present or not self.subscribed_once):
                    await self.subscribe_all()
                for pid, out in list(self.pending.items()):
                    if out.state == "pub":
                        self.send(w.publish_packet(out.topic, out.payload, out.qos,
                                                   packet_id=pid, version=self.version,
                                                   dup=True))
                    else:
                        self.send(w.packet(w.PUBREL, 2, struct.pack("!H", pid)))
                await reader_task
            except IO_ERRORS:
                pass
            finally:
                self.online = False
                lost = True
                reader_task.cancel()
                ping_task.cancel()
                self._close()

    async def subscribe(self, filters):
        """The SUBACK codes."""
        self.suback = asyncio.get_running_loop().create_future()
        self.send(w.subscribe_packet(list(filters), self.alloc_pid(), self.version))
        return await asyncio.wait_for(self.suback, 20)

    async def subscribe_all(self):
        codes = await self.subscribe(self.filters)
        if any(c >= 0x80 for c in codes):
            self.soak.note("%s: SUBACK refused %r" % (self.name, codes))
        self.subscribed_once = True

    def _close(self):
        if self.writer is not None:
            try:
                self.writer.close()
            except (OSError, RuntimeError):
                pass
        self.writer = None

    async def leave(self):
        """DISCONNECT and stop (the fleet leaving)."""
        self.stopping = True
        if self.online:
            self.send(w.disconnect_packet(self.version))
            try:
                await asyncio.wait_for(self.writer.drain(), 5)
            except IO_ERRORS + (AttributeError, RuntimeError):
                pass
            self._close()
            self.online = False

    async def _pinger(self):
        while True:
            await asyncio.sleep(self.keepalive / 3)
            if time.monotonic() - self.last_sent > self.keepalive / 3:
                self.send(bytes([w.PINGREQ << 4, 0]))

    async def _reader(self, reader):
        while True:
            if self.paused is not None:
                await self.paused.wait()
            ptype, flags, body = await read_packet(reader)
            if ptype == w.PUBLISH:
                topic, qos, pid, payload = publish_fields(flags, body, self.version)
                if qos == 2:
                    if pid in self.incoming_q2:
                        self.on_duplicate_q2(topic, payload)
                    else:
                        self.incoming_q2.add(pid)
                        self.on_message(topic, qos, payload)
                    self.send(w.packet(w.PUBREC, 0, struct.pack("!H", pid)))
                else:
                    self.on_message(topic, qos, payload)
                    if qos == 1:
                        self.send(w.packet(w.PUBACK, 0, struct.pack("!H", pid)))
            elif ptype in (w.PUBACK, w.PUBREC, w.PUBCOMP):
                pid = struct.unpack("!H", body[:2])[0]
                code = body[2] if len(body) > 2 else 0
                out = self.pending.get(pid)
                if out is None:
                    continue
                if ptype == w.PUBREC and code < 0x80:
                    out.state = "rel"
                    self.send(w.packet(w.PUBREL, 2, body[:2]))
                    continue
                del self.pending[pid]
                self.on_ack(out, code)
            elif ptype == w.PUBREL:
                pid = struct.unpack("!H", body[:2])[0]
                self.incoming_q2.discard(pid)
                self.send(w.packet(w.PUBCOMP, 0, body[:2]))
            elif ptype == w.SUBACK:
                off = 2
                if self.version == 5:
                    plen, off = w.decode_varint(body, off)
                    off += plen
                if self.suback is not None and not self.suback.done():
                    self.suback.set_result(list(body[off:]))
            elif ptype == w.DISCONNECT:
                self._count(self.disconnect_reasons, body[0] if body else 0)
