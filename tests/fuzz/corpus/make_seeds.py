#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_codec, fuzz_connect and fuzz_policy: a handful of real
packets per MQTT version (the same shapes the unit tests use). Run from anywhere:
    python3 tests/fuzz/corpus/make_seeds.py"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("!H", len(b)) + b


def pkt(t, flags, body):
    return bytes([(t << 4) | flags]) + varint(len(body)) + body


def props(raw):
    return varint(len(raw)) + raw


USER = b"\x26" + s("k") + s("v")
CONNECT_PROPS = (b"\x11" + struct.pack("!I", 3600) + b"\x21" + struct.pack("!H", 20) +
                 b"\x27" + struct.pack("!I", 65536) + b"\x22" + struct.pack("!H", 10) +
                 b"\x19\x01\x17\x00" + USER + b"\x15" + s("SCRAM") + b"\x16" + s(b"\x00\x01"))
WILL_PROPS = (b"\x18" + struct.pack("!I", 30) + b"\x01\x01" + b"\x02" + struct.pack("!I", 60) +
              b"\x03" + s("text/plain") + b"\x08" + s("reply") + b"\x09" + s(b"\x00\xff") + USER)


def connect_body(level, full):
    name = "MQIsdp" if level == 3 else "MQTT"
    flags = 0x02
    tail = b""
    if full:
        flags = 0x02 | 0x04 | (1 << 3) | 0x20 | 0x80 | 0x40
    body = s(name) + bytes([level, flags]) + struct.pack("!H", 60)
    if level == 5:
        body += props(CONNECT_PROPS if full else b"")
    body += s("client-1")
    if full:
        if level == 5:
            body += props(WILL_PROPS)
        body += s("devices/d1/status") + s(b"offline")
        body += s("user") + s(b"secret")
    return body + tail


def stream(level):
    v5 = level == 5
    p = lambda raw: props(raw) if v5 else b""
    out = []
    out.append(pkt(1, 0, connect_body(level, True)))
    out.append(pkt(2, 0, b"\x00\x00" + p(b"\x24\x01" + b"\x13" + struct.pack("!H", 30))))
    out.append(pkt(3, 0, s("a/b") + p(b"") + b"hello"))
    out.append(pkt(3, 0x0B, s("devices/d1/telemetry") + b"\x00\x07" +
                   p(b"\x23\x00\x01" + USER + b"\x0b\x05") + b"\x00\x01payload"))
    if v5:
        out.append(pkt(3, 0, s("") + p(b"\x23\x00\x01") + b"alias"))
    out.append(pkt(4, 0, b"\x00\x07" + (b"\x10" + props(b"\x1f" + s("r")) if v5 else b"")))
    out.append(pkt(5, 0, b"\x00\x08"))
    out.append(pkt(6, 2, b"\x00\x08"))
    out.append(pkt(7, 0, b"\x00\x08" + (b"\x92" if v5 else b"")))
    out.append(pkt(8, 2, b"\x00\x09" + p(b"\x0b\x07") + s("a/+/c") + b"\x01" + s("#") +
                   (b"\x2e" if v5 else b"\x02") + s("$share/g/x") + b"\x00"))
    out.append(pkt(9, 0, b"\x00\x09" + p(b"") + (b"\x01\x87\x00" if v5 else b"\x01\x80\x00")))
    out.append(pkt(10, 2, b"\x00\x0a" + p(USER) + s("a/+/c")))
    out.append(pkt(11, 0, b"\x00\x0a" + (p(b"") + b"\x00" if v5 else b"")))
    out.append(pkt(12, 0, b""))
    out.append(pkt(13, 0, b""))
    if v5:
        out.append(pkt(15, 0, b"\x18" + props(b"\x15" + s("SCRAM") + b"\x16" + s(b"\x01"))))
        out.append(pkt(14, 0, b"\x8b" + props(b"\x1f" + s("bye"))))
    else:
        out.append(pkt(14, 0, b""))
    return out


def write(name, fname, data):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


VERSION_BYTE = {3: 0, 4: 1, 5: 2}
PREFIX = {3: 1, 4: 2, 5: 3}
for level in (3, 4, 5):
    packets = stream(level)
    write("codec", "stream_v%d" % level, bytes([VERSION_BYTE[level]]) + b"".join(packets))
    for i, p in enumerate(packets):
        write("codec", "v%d_%02d_type%d" % (level, i, p[0] >> 4), bytes([VERSION_BYTE[level]]) + p)
    for full in (False, True):
        body = connect_body(level, full)
        name = "v%d_%s" % (level, "full" if full else "minimal")
        write("connect", name + "_raw", b"\x00" + body)
        # The prefixed form: the header bytes the selector adds are left out.
        skip = 9 if level == 3 else 7
        write("connect", name, bytes([PREFIX[level]]) + body[skip:])
write("connect", "props_connect", b"\x00" + CONNECT_PROPS)
write("connect", "props_will", b"\x00" + WILL_PROPS)

for name, data in {
    "device_telemetry": b"device1\nc1\ndevices/device1/telemetry/temp",
    "device_secret": b"device1\nc1\ndevices/device1/telemetry/secret/x",
    "device_commands": b"device1\nc1\ndevices/device1/commands/#",
    "client_placeholder": b"dev+1\nclient9\nclients/client9/x",
    "ops_firmware": b"ops\nconsole\ndevices/d1/commands/firmware/v2",
    "ops_devices": b"ops\nconsole\n$share/g/devices/#",
    "ops_sys": b"ops\nconsole\n$SYS/broker/clients/connected",
    "broadcast": b"a/b\nc\nbroadcast/+",
    "utf8": b"d\xc3\xa9v\nc\ndevices/d\xc3\xa9v/status",
}.items():
    write("policy", name, data)

# fuzz_session: an options byte (protocol, check_deliveries, on_publish_denied), then records
# of a direction byte (0 client, 1 broker) and one packet: a `#` subscription over the denied
# branch, deliveries on and off it at every QoS, topic aliases both ways.
def session_stream(level):
    v5 = level == 5
    p = lambda raw: props(raw) if v5 else b""
    alias = lambda n: p(b"\x23" + struct.pack("!H", n))
    c, b = b"\x00", b"\x01"
    out = [b + pkt(2, 0, b"\x00\x00" + p(b"\x22\x00\x0a"))]           # CONNACK, alias max 10
    out.append(c + pkt(8, 2, b"\x00\x01" + p(b"") + s("#") + b"\x02"))  # SUBSCRIBE #
    out.append(b + pkt(9, 0, b"\x00\x01" + p(b"") + b"\x02"))
    for qos, flags in ((0, 0), (1, 2), (2, 4)):
        pid = struct.pack("!H", 10 + qos) if qos else b""
        out.append(b + pkt(3, flags, s("test/nosubscribe") + pid + p(b"") + b"withheld"))
        out.append(b + pkt(3, flags, s("test/visible") + pid + p(b"") + b"visible"))
    out.append(b + pkt(3, 1, s("devices/d2/secret/k") + p(b"") + b"retained"))
    out.append(b + pkt(6, 2, b"\x00\x0c"))                               # PUBREL of the QoS 2
    out.append(c + pkt(3, 2, s("devices/d1/t") + b"\x00\x05" + p(b"") + b"mine"))
    out.append(c + pkt(3, 2, s("devices/d2/t") + b"\x00\x06" + p(b"") + b"spoof"))
    if v5:
        out.append(c + pkt(3, 0, s("devices/d1/a") + alias(1) + b"set"))
        out.append(c + pkt(3, 0, s("") + alias(1) + b"by-alias"))
        out.append(c + pkt(3, 0, s("devices/d1/locked") + alias(1) + b"rebind"))
        out.append(c + pkt(3, 0, s("") + alias(1) + b"denied-by-alias"))
        out.append(b + pkt(3, 0, s("test/nosubscribe") + alias(2) + b"hidden"))
        out.append(b + pkt(3, 0, s("") + alias(2) + b"hidden-by-alias"))
        out.append(b + pkt(3, 0, s("test/ok") + alias(3) + b"ok"))
        out.append(b + pkt(3, 0, s("") + alias(3) + b"ok-by-alias"))
    out.append(c + pkt(8, 2, b"\x00\x02" + p(b"") + s("$share/g/#") + b"\x01" + s("a/#") +
                       b"\x01" + s("test/nosubscribe") + b"\x00"))
    return out


for level, opt in ((3, 0), (4, 1), (5, 2)):
    records = session_stream(level)
    write("session", "stream_v%d" % level, bytes([opt]) + b"".join(records))
    write("session", "stream_v%d_nocheck" % level, bytes([opt | 4]) + b"".join(records))
    write("session", "stream_v%d_disconnect" % level, bytes([opt | 8]) + b"".join(records))


# fuzz_pipeline: an options byte, then records of a control byte (0 client, 1 broker, 2 reload,
# 3 timer; the upper six bits advance the clock) and, for packets, one packet: CONNECT with a
# will (certificate or password), the broker's CONNACK, subscriptions and publishes on both
# sides of the rights, a reload that narrows them, a keepalive tick.
def pipeline_stream(level, password):
    v5 = level == 5
    p = lambda raw: props(raw) if v5 else b""
    flags = 0x02 | 0x04 | (0xC0 if password else 0)
    body = s("MQTT") + bytes([level, flags]) + struct.pack("!H", 10) + p(b"") + s("c1")
    body += p(b"") + s("devices/d1/will") + s("bye")
    if password:
        body += s("c1") + s("pw")
    c, b, reload, tick = b"\x00", b"\x01", b"\x02", bytes([3 | (40 << 2)])
    out = [c + pkt(1, 0, body), b + pkt(2, 0, b"\x00\x00" + p(b"\x22\x00\x0a"))]
    out.append(c + pkt(8, 2, b"\x00\x01" + p(b"") + s("#") + b"\x01"))
    out.append(b + pkt(9, 0, b"\x00\x01" + p(b"") + b"\x01"))
    for topic in ("devices/d1/up", "devices/d1/locked", "devices/d2/up", "test/x"):
        out.append(c + pkt(3, 0, s(topic) + p(b"") + b"x"))
    out.append(reload)
    out.append(c + pkt(3, 0, s("test/x") + p(b"") + b"after reload"))
    out.append(c + pkt(8, 2, b"\x00\x02" + p(b"") + s("test/#") + b"\x00"))
    out.append(tick)
    out.append(c + pkt(12, 0, b""))
    return b"".join(out)


for level, opt in ((4, 0), (5, 0)):
    for password in (False, True):
        name = "stream_v%d%s" % (level, "_password" if password else "")
        write("pipeline", name, bytes([opt]) + pipeline_stream(level, password))
        write("pipeline", name + "_limited", bytes([opt | 16 | 8]) + pipeline_stream(level, password))
