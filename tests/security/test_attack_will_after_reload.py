"""Attack round: a will is decided at CONNECT and published by the broker later; a reload in
between that turns `integrity.stamp_identity` on does not reach it.

CONTRACT: "stamp_identity holds for the will too: subscribers must not get a forged
moat-identity". With stamping off at CONNECT, a device puts `moat-identity=ops-console` in its
will properties; the operator turns stamping on (SIGHUP). PUBLISHes are stamped from then on
(Session::setStampIdentity), but the will the broker holds still carries the forged identity
and is delivered to subscribers that now trust the property."""

import signal
import struct

import moat_harness as h
import mqtt_wire as w
import sec_util as u
from moat_harness import V5


def _user_props(p):
    body = p.body
    tlen = struct.unpack("!H", body[:2])[0]
    off = 2 + tlen + (2 if (p.flags >> 1) & 3 else 0)
    plen, off = w.decode_varint(body, off)
    end, out = off + plen, []
    while off < end:
        pid = body[off]
        off += 1
        if pid == 0x26:
            kl = struct.unpack("!H", body[off:off + 2])[0]
            k = body[off + 2:off + 2 + kl].decode()
            off += 2 + kl
            vl = struct.unpack("!H", body[off:off + 2])[0]
            v = body[off + 2:off + 2 + vl].decode()
            off += 2 + vl
            out.append((k, v))
        elif pid in (0x01,):
            off += 1
        elif pid in (0x23,):
            off += 2
        elif pid in (0x02,):
            off += 4
        elif pid == 0x0B:
            _, off = w.decode_varint(body, off)
        elif pid in (0x03, 0x08, 0x09):
            ln = struct.unpack("!H", body[off:off + 2])[0]
            off += 2 + ln
        else:
            raise AssertionError("unexpected property %#x" % pid)
    return out


def test_will_forged_identity_not_delivered_after_stamping_turned_on(moat_factory, broker):
    moat = moat_factory({"integrity": {"stamp_identity": False}})
    sub = u.connected_wire(moat, V5, u.unique("stamp-sub"), cert="device2")
    assert sub.subscribe([("wills/#", 0)]) == [0]
    dev = moat.wire(cert="device1", version=V5)
    cid = u.unique("stamp-dev")
    assert dev.connect(cid, will={"topic": "wills/device1", "payload": b"gone",
                                  "props": [(w.PROP_USER_PROPERTY,
                                             ("moat-identity", "ops-console"))]}) == 0
    broker.wait_log(r"New client connected .* as %s" % cid)

    before = moat.metric("moat_config_reloads_total", result="ok")
    cfg = dict(moat.config)
    cfg["integrity"] = {"stamp_identity": True}
    moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > before, 15,
                 message="reload ok counted")
    # Stamping is on now: the will the broker holds carries the forged identity, so the
    # session is ended with a normal DISCONNECT (the broker discards the will), audited.
    moat.wait_audit(lambda e: e.get("event") == "authz_denied" and e.get("action") == "will"
                    and e.get("client_id") == cid, 10, message="will refused after reload")
    dev.abort()
    identities = []
    try:
        while True:
            p = sub.read_packet(timeout=3)
            if p.type == w.PUBLISH and w.decode_publish(p, V5)[0] == "wills/device1":
                identities = [v for k, v in _user_props(p) if k == "moat-identity"]
                break
    except Exception:
        pass
    sub.close()
    assert "ops-console" not in identities, (
        "a will carrying a forged moat-identity was delivered after stamp_identity was "
        "turned on: %r" % identities)
