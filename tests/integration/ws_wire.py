"""MQTT over WebSocket with exact control of the bytes: a raw RFC 6455 client for tests.

WsWire is a mqtt_wire.WireClient whose MQTT bytes travel in masked binary frames, so every
MQTT helper (connect, subscribe, publish, wait_closed) works unchanged; the frame layer is
open to tests (send_frame, the close code and pongs received). Every read is bounded."""

import base64
import hashlib
import os
import select
import socket
import ssl
import struct
import time

import mqtt_wire

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, key=b"\x12\x34\x56\x78"):
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    # XOR through int.from_bytes: a 3 MiB frame in milliseconds, not a Python loop.
    k = (key * ((n + 3) // 4))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big") \
        if n else b""
    return head + key + masked


def request(path="/mqtt", protocols="mqtt", key=None, version="13", origin=None, extra=(),
            host="localhost"):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key]
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    if protocols is not None:
        lines.append("Sec-WebSocket-Protocol: %s" % protocols)
    if origin is not None:
        lines.append("Origin: %s" % origin)
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WsWire(mqtt_wire.WireClient):
    def __init__(self, host, port, ctx=None, version=4, timeout=5.0, upgrade=True, **req):
        super().__init__(host, port, ctx, version, timeout)
        self.raw = bytearray()
        self.close_code = None   # the server's close frame: its code (0: empty body)
        self.closed = False
        self.pongs = []
        self.status = None
        self.headers = {}
        if upgrade:
            status, _ = self.upgrade(**req)
            if status != 101:
                raise mqtt_wire.WireError("upgrade refused: %d" % status)

    def upgrade(self, raw_request=None, pieces=None, **req):
        """Sends the request (whole, or cut at the offsets in `pieces`), returns (status,
        body) of the HTTP answer; headers in self.headers (lowercase names)."""
        data, key = (raw_request, None) if raw_request is not None else request(**req)
        cuts = [0] + list(pieces or []) + [len(data)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                self.sock.sendall(data[a:b])
                if pieces:
                    time.sleep(0.005)  # let the pieces arrive as separate reads
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.raw:
            self._read_raw(deadline)
        head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
        self.raw = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        body = b""
        if self.status != 101:
            length = int(self.headers.get("content-length", "0"))
            while len(self.raw) < length:
                self._read_raw(deadline)
            body = bytes(self.raw[:length])
        elif key is not None:
            assert self.headers.get("sec-websocket-accept") == accept_for(key)
        return self.status, body

    def _read_raw(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no data before the deadline")
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], remaining)
            if not r:
                raise socket.timeout("no data before the deadline")
        self.sock.settimeout(max(0.01, remaining))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by peer")
        self.raw += data

    def send(self, data):
        self.sock.sendall(frame(BINARY, data))

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def _parse_frames(self):
        """Takes the complete frames out of self.raw; True if MQTT bytes or a close came."""
        progress = False
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            assert not b1 & 0x80, "server frames are never masked"
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    break
                n, off = struct.unpack("!H", self.raw[2:4])[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    break
                n, off = struct.unpack("!Q", self.raw[2:10])[0], 10
            if len(self.raw) < off + n:
                break
            payload = bytes(self.raw[off:off + n])
            del self.raw[:off + n]
            opcode = b0 & 0x0F
            if opcode in (BINARY, 0):
                self.buf += payload
                progress = True
            elif opcode == CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 0
                self.closed = True
                return True
            elif opcode == PONG:
                self.pongs.append(payload)
                progress = True
            else:
                raise AssertionError("unexpected server frame opcode %d" % opcode)
        return progress

    def _fill(self, deadline):
        while True:
            if self.closed:
                raise EOFError("websocket closed (code %r)" % self.close_code)
            if self._parse_frames():
                return
            self._read_raw(deadline)

    def wait_close_frame(self, timeout=None):
        """Reads until the server's close frame; returns its code. MQTT bytes are kept."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.closed:
            if not self._parse_frames():
                self._read_raw(deadline)
        return self.close_code

    def wait_eof(self, timeout=None):
        """After the close handshake the server closes TCP too."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self._read_raw(deadline)
        except (EOFError, ConnectionError, ssl.SSLError):
            return True
