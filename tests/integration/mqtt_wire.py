"""A minimal MQTT 3.1.1 / 5.0 wire client for tests that need exact control of the bytes.

paho hides what these tests assert on (an alias-only PUBLISH is refused by paho before it is
sent; paho 1.6.1 drops the reason code of a 1-byte-body DISCONNECT; a subscriber that stops
reading its socket cannot be expressed with paho). Every read here is bounded by a timeout.
"""

import select
import socket
import ssl
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# v5 property identifiers used by the tests.
PROP_TOPIC_ALIAS = 0x23
PROP_TOPIC_ALIAS_MAXIMUM = 0x22
PROP_USER_PROPERTY = 0x26
PROP_REASON_STRING = 0x1F


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def properties(props):
    """props: list of (id, value); value int (by id width) or str/bytes or (k, v) pair."""
    out = bytearray()
    for pid, value in props or []:
        out += varint(pid)
        if pid in (PROP_TOPIC_ALIAS, PROP_TOPIC_ALIAS_MAXIMUM, 0x21, 0x13):
            out += struct.pack("!H", value)
        elif pid in (0x11, 0x27, 0x02, 0x18):
            out += struct.pack("!I", value)
        elif pid == PROP_USER_PROPERTY:
            out += utf8(value[0]) + utf8(value[1])
        else:
            out += utf8(value)
    return varint(len(out)) + bytes(out)


def connect_packet(client_id, version=4, username=None, password=None, keepalive=60,
                   clean=True, will=None, props=None):
    """will: dict(topic=, payload=, qos=0, retain=False, props=None (v5 will properties))."""
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = utf8("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += properties(props)
    body += utf8(client_id)
    if will:
        if version == 5:
            body += properties(will.get("props"))
        body += utf8(will["topic"]) + utf8(will.get("payload", b""))
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload, qos=0, retain=False, packet_id=1, version=4, props=None,
                   dup=False):
    flags = (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += properties(props)
    return packet(PUBLISH, flags, body + payload)


def subscribe_packet(filters, packet_id=1, version=4):
    """filters: list of (filter, qos)."""
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += properties(None)
    for f, q in filters:
        body += utf8(f) + bytes([q])
    return packet(SUBSCRIBE, 2, body)


def disconnect_packet(version=4, reason=0):
    return packet(DISCONNECT, 0, bytes([reason]) if version == 5 and reason else b"")


class Packet:
    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body

    def __repr__(self):
        return "Packet(type=%d, flags=%d, body=%r)" % (self.type, self.flags, self.body[:40])


class WireError(Exception):
    pass


class WireClient:
    """One MQTT connection over TLS (or plain TCP) with bounded, explicit reads."""

    def __init__(self, host, port, ctx=None, version=4, timeout=5.0, family=socket.AF_INET):
        self.version = version
        self.timeout = timeout
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(timeout)
        raw.connect((host, port))
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Drop the TCP connection without DISCONNECT (and without a TLS close_notify)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        raw = self.sock.detach() if isinstance(self.sock, ssl.SSLSocket) else None
        if raw is not None:
            socket.socket(fileno=raw).close()
        else:
            self.sock.close()

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no data before the deadline")
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            pass
        else:
            r, _, _ = select.select([self.sock], [], [], remaining)
            if not r:
                raise socket.timeout("no data before the deadline")
        self.sock.settimeout(max(0.01, remaining))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by peer")
        self.buf += data

    def read_packet(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    first = self.buf[0]
                    body = bytes(self.buf[i:i + length])
                    del self.buf[:i + length]
                    return Packet(first >> 4, first & 0x0F, body)
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        """Reads packets until one of ptype arrives (PUBLISHes in between are kept)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = self.read_packet(max(0.01, deadline - time.monotonic()))
            if p.type == ptype:
                return p
            if p.type == PUBLISH:
                self.pending_publishes.append(p)

    pending_publishes = None

    def connect(self, client_id, **kw):
        self.pending_publishes = []
        self.send(connect_packet(client_id, version=self.version, **kw))
        ack = self.read_packet()
        if ack.type != CONNACK:
            raise WireError("expected CONNACK, got %r" % ack)
        return ack.body[1]  # v3 return code / v5 reason code

    def subscribe(self, filters, packet_id=1):
        self.send(subscribe_packet(filters, packet_id, self.version))
        ack = self.expect(SUBACK)
        off = 2
        if self.version == 5:
            plen, off = decode_varint(ack.body, off)
            off += plen
        return list(ack.body[off:])

    def publish(self, topic, payload, qos=0, packet_id=1, **kw):
        self.send(publish_packet(topic, payload, qos, packet_id=packet_id,
                                 version=self.version, **kw))
        if qos == 1:
            ack = self.expect(PUBACK)
            return ack.body[2] if len(ack.body) > 2 else 0
        if qos == 2:
            rec = self.expect(PUBREC)
            code = rec.body[2] if len(rec.body) > 2 else 0
            if code < 0x80:
                self.send(packet(PUBREL, 2, rec.body[:2]))
                self.expect(PUBCOMP)
            return code
        return None

    def wait_closed(self, timeout=None):
        """Returns the DISCONNECT reason code the peer sent (None if it just closed)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        reason = None
        try:
            while True:
                p = self.read_packet(max(0.01, deadline - time.monotonic()))
                if p.type == DISCONNECT:
                    reason = p.body[0] if p.body else 0
        except (EOFError, ConnectionError, ssl.SSLError):
            return reason
        except socket.timeout:
            raise WireError("connection still open after the deadline (reason so far %r)"
                            % reason)

    def publishes(self, timeout):
        """Collects PUBLISH packets (topic, payload) until `timeout` passes with none."""
        out = []
        for p in self.pending_publishes or []:
            out.append(decode_publish(p, self.version))
        self.pending_publishes = []
        while True:
            try:
                p = self.read_packet(timeout)
            except socket.timeout:
                return out
            if p.type == PUBLISH:
                out.append(decode_publish(p, self.version))
                qos = (p.flags >> 1) & 3
                if qos:
                    pid = decode_publish_id(p)
                    self.send(packet(PUBACK if qos == 1 else PUBREC, 0, struct.pack("!H", pid)))


def decode_varint(b, off):
    mult, value = 1, 0
    while True:
        byte = b[off]
        off += 1
        value += (byte & 0x7F) * mult
        mult *= 128
        if not byte & 0x80:
            return value, off


def decode_publish_id(p):
    tlen = struct.unpack("!H", p.body[:2])[0]
    return struct.unpack("!H", p.body[2 + tlen:4 + tlen])[0]


def decode_publish(p, version):
    tlen = struct.unpack("!H", p.body[:2])[0]
    topic = p.body[2:2 + tlen].decode()
    off = 2 + tlen
    if (p.flags >> 1) & 3:
        off += 2
    if version == 5:
        plen, off = decode_varint(p.body, off)
        off += plen
    return topic, p.body[off:]
