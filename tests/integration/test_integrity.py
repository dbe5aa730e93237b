"""Message integrity (CONTRACT.md §2 `integrity`, §3 "Signed messages"; issue 11): signed
publishes through a real `moat run` to a real Mosquitto, with paho 3.1.1 / 5.0 subscribers and
`mqtt_wire` publishers (exact bytes, PUBACK / DISCONNECT reason codes).

Signatures come from `moat sign` (which this also tests) and, for the wire format cross-check,
from Python's hmac and `openssl pkeyutl`. Keys are generated per module. Most tests share one
gateway (`gw`, one rule per topic prefix); the key rotation and `stamp_identity: false` tests
start their own.

Wills are held to the same rules at CONNECT (the broker publishes them for the client later,
when nothing can be refused): a will under a rule must be signed, and stamp_identity applies.

Refusals are observed without timing thresholds: after the refused PUBLISH the same connection
sends an unsigned sentinel, and the subscriber's first delivery must be that sentinel.
"""

import base64
import hashlib
import hmac
import os
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import moat_harness as h
import mqtt_wire as w
from moat_harness import V311, V5, connected

# Shared gateway: rule index -> (topic prefix, algorithm, max_age, on_invalid).
RULES = [
    ("sig/hmac", "hmac-sha256", None, "drop"),      # integrity.rules[0]
    ("sig/hmac-ts", "hmac-sha256", "5m", "drop"),   # integrity.rules[1]
    ("sig/ed", "ed25519", None, "drop"),            # integrity.rules[2]
    ("sig/ed-ts", "ed25519", "5m", "drop"),         # integrity.rules[3]
    ("sig/dc", "hmac-sha256", "5m", "disconnect"),  # integrity.rules[4]
]
PER_IDENTITY_RULE = len(RULES)                      # integrity.rules[5]: devices/+/firmware/#


class Keys:
    """Key material of the module: an HMAC secret, an Ed25519 pair, wrong keys of each kind,
    and per-identity HMAC secrets in keys/<identity>.key."""

    def __init__(self, d):
        self.dir = d
        self.hmac = self._hmac_file("hmac.key", self.random_secret())
        self.hmac_other = self._hmac_file("hmac-other.key", self.random_secret())
        self.ed_private, self.ed_public = self._ed25519("ed")
        self.ed_other_private, _ = self._ed25519("ed-other")
        os.mkdir(os.path.join(d, "ids"))
        # Written with a trailing newline, which the key loader ignores (CONTRACT.md §3).
        self.identity_secret = {}
        for ident in ("device1", "device2"):
            secret = os.urandom(16).hex().encode()
            self.identity_secret[ident] = secret
            with open(self.identity_path(ident), "wb") as f:
                f.write(secret + b"\n")

    @staticmethod
    def random_secret():
        # Raw random bytes; never ending in CR / LF, which the loader would strip.
        while True:
            s = os.urandom(32)
            if s[-1:] not in (b"\r", b"\n"):
                return s

    def _hmac_file(self, name, secret):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(secret)
        return path

    def _ed25519(self, name):
        private = os.path.join(self.dir, name + ".key")
        public = os.path.join(self.dir, name + ".pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private],
                       check=True, capture_output=True, timeout=10)
        subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public],
                       check=True, capture_output=True, timeout=10)
        return private, public

    def identity_path(self, ident):
        return os.path.join(self.dir, "ids", ident + ".key")

    def secret(self, path):
        with open(path, "rb") as f:
            data = f.read()
        return data[:-1] if data.endswith(b"\n") else data


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return Keys(str(tmp_path_factory.mktemp("keys")))


def rule(prefix, algorithm, max_age, on_invalid, key):
    r = {"topics": [prefix + "/#"], "algorithm": algorithm, "key": key,
         "on_invalid": on_invalid}
    if max_age:
        r["max_age"] = max_age
    return r


def shared_overrides(keys):
    rules = [rule(p, alg, age, inv, keys.hmac if alg == "hmac-sha256" else keys.ed_public)
             for p, alg, age, inv in RULES]
    rules.append({"topics": ["devices/+/firmware/#"], "algorithm": "hmac-sha256",
                  "key": os.path.join(keys.dir, "ids", "%u.key")})
    return {"integrity": {"rules": rules, "stamp_identity": True}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory, certs, keys):
    """One Mosquitto and one `moat run` for the module (they are stateless between tests: every
    test uses its own topics)."""
    d = tmp_path_factory.mktemp("gw")
    os.mkdir(str(d / "broker"))
    os.mkdir(str(d / "moat"))
    broker = h.Mosquitto(str(d / "broker")).start()
    moat = h.Moat(str(d / "moat"), certs, broker.port, shared_overrides(keys))
    try:
        moat.start()
        yield moat
        assert moat.proc.poll() is None, "moat exited during the module; stderr:\n" + \
            moat.stderr()
        moat.stop(expect_status=0)
    finally:
        moat.kill()
        broker.stop()


_tags = iter(range(1, 1 << 30))


@pytest.fixture
def tag():
    """A topic level unique to the test (the module's tests share one broker)."""
    return "t%d" % next(_tags)


# ---------------------------------------------------------------------------------------------
# helpers

def sign(key, topic, payload, algorithm="hmac-sha256", fmt="v5", ts=None):
    """`moat sign`. v5: [(name, value)] user properties; v3: payload + trailer bytes.
    ts: None (no timestamp), "now", or Unix seconds."""
    args = [h.moat_bin(), "sign", "--key", key, "--topic", topic, "--algorithm", algorithm,
            "--format", fmt]
    if ts == "now":
        args.append("--timestamp")
    elif ts is not None:
        args.append("--timestamp=%d" % ts)
    r = subprocess.run(args, input=payload, capture_output=True, timeout=10)
    assert r.returncode == 0, "moat sign failed: %r" % r.stderr
    if fmt == "v3":
        return r.stdout
    return [tuple(line.split("=", 1)) for line in r.stdout.decode().splitlines()]


def user_props(pairs):
    return [(w.PROP_USER_PROPERTY, (k, v)) for k, v in pairs]


def signed_bytes(topic, payload, ts=None):
    """CONTRACT.md §3: topic 0x00 payload, or topic 0x01 ts payload."""
    if ts is None:
        return topic.encode() + b"\x00" + payload
    return topic.encode() + b"\x01" + struct.pack(">Q", ts) + payload


def py_hmac(secret, topic, payload, ts=None):
    return hmac.new(secret, signed_bytes(topic, payload, ts), hashlib.sha256).digest()


def received_props(m):
    props = getattr(m, "properties", None)
    return list(getattr(props, "UserProperty", []) or []) if props is not None else []


def subscriber(clients, gw, filters, version=V5, cert="operator1"):
    s = connected(clients, gw, version=version, cert=cert)
    if isinstance(filters, str):
        filters = [filters]
    assert s.subscribe([(f, 1) for f in filters]) == [1] * len(filters)
    return s


def publisher(wires, gw, version, cert="device1", client_id=None):
    p = wires(gw, cert=cert, version=version)
    assert p.connect(client_id or "pub-%s-%d" % (cert, next(_tags))) == 0
    return p


def until_sentinel(sub, sentinel, timeout=10.0):
    """Every delivery up to and including the one whose payload is `sentinel`."""
    got = []
    while True:
        m = sub.get(timeout)
        assert m is not None, "no sentinel %r; received so far: %r" % (
            sentinel, [(x.topic, x.payload[:40]) for x in got])
        got.append(m)
        if m.payload == sentinel:
            return got


def closing_packets(client, timeout=5.0):
    """The packet types received until the peer closes (bounded); the DISCONNECT reason code,
    if any, in client.last_disconnect_reason."""
    types = []
    client.last_disconnect_reason = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            p = client.read_packet(max(0.01, deadline - time.monotonic()))
            types.append(p.type)
            if p.type == w.DISCONNECT:
                client.last_disconnect_reason = p.body[0] if p.body else 0
    except (EOFError, ConnectionError, ssl.SSLError):
        return types
    except socket.timeout:
        raise AssertionError("connection still open after %.0fs (got %r)" % (timeout, types))


def denied_integrity(gw):
    return gw.metric("moat_authz_denied_total", action="integrity")


def integrity_event(gw, topic):
    return gw.wait_audit(lambda e: e.get("event") == "authz_denied"
                         and e.get("action") == "integrity" and e.get("topic") == topic,
                         message="authz_denied integrity event for " + topic)


# ---------------------------------------------------------------------------------------------
# valid signatures are delivered

@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
@pytest.mark.parametrize("with_ts", [False, True], ids=["no-ts", "max_age"])
@pytest.mark.parametrize("alg", ["hmac-sha256", "ed25519"])
def test_valid_signed_publish_delivered(gw, keys, clients, wires, tag, alg, with_ts, version):
    prefix = {("hmac-sha256", False): "sig/hmac", ("hmac-sha256", True): "sig/hmac-ts",
              ("ed25519", False): "sig/ed", ("ed25519", True): "sig/ed-ts"}[(alg, with_ts)]
    signing_key = keys.hmac if alg == "hmac-sha256" else keys.ed_private
    topic = "%s/%s/t" % (prefix, tag)
    sub5 = subscriber(clients, gw, topic, V5)
    sub3 = subscriber(clients, gw, topic, V311, cert="device2")
    before = denied_integrity(gw)
    pub = publisher(wires, gw, version)
    # Binary payloads (NUL bytes, a trailer-sized one, an empty one) come out byte for byte.
    payloads = [b"\x00\x01fw-chunk\xff" + os.urandom(64), os.urandom(72), b""]
    sent_props = []
    for i, payload in enumerate(payloads):
        ts = "now" if with_ts else None
        if version == V5:
            props = sign(signing_key, topic, payload, alg, "v5", ts)
            assert [k for k, _ in props] == (["moat-sig", "moat-ts"] if with_ts
                                             else ["moat-sig"])
            sent_props.append(props)
            code = pub.publish(topic, payload, qos=1, packet_id=i + 1,
                               props=user_props(props))
        else:
            wire_payload = sign(signing_key, topic, payload, alg, "v3", ts)
            trailer = (64 if alg == "ed25519" else 32) + (8 if with_ts else 0)
            assert len(wire_payload) == len(payload) + trailer
            assert wire_payload.startswith(payload)
            code = pub.publish(topic, wire_payload, qos=1, packet_id=i + 1)
        assert code == 0, "PUBACK 0x%02x for a valid signature" % code
    for i, payload in enumerate(payloads):
        m5, m3 = sub5.get(10), sub3.get(10)
        assert m5 is not None and m3 is not None, "signed message %d not delivered" % i
        # v3: the trailer is stripped, both kinds of subscriber see exactly the original.
        assert (m5.topic, m5.payload) == (topic, payload)
        assert (m3.topic, m3.payload) == (topic, payload)
        props = received_props(m5)
        if version == V5:
            # v5: moat-sig / moat-ts are forwarded as sent (a downstream consumer can verify
            # them again), and the identity is stamped after them.
            assert props == sent_props[i] + [("moat-identity", "device1")]
        else:
            # v3: nothing to carry the (stripped) signature or the stamp in.
            assert props == []
    assert denied_integrity(gw) == before


def test_v5_timestamp_without_max_age(gw, keys, clients, wires, tag):
    """moat-ts is optional under a rule without max_age; when sent, it is signed over."""
    topic = "sig/hmac/%s/ts" % tag
    sub = subscriber(clients, gw, [topic, "plain/%s" % tag])
    pub = publisher(wires, gw, V5)
    old = int(time.time()) - 86400 * 365  # no max_age: any age is fine
    props = sign(keys.hmac, topic, b"with-ts", ts=old)
    assert pub.publish(topic, b"with-ts", qos=1, packet_id=1, props=user_props(props)) == 0
    # The same signature with moat-ts removed or altered does not verify.
    assert pub.publish(topic, b"with-ts", qos=1, packet_id=2,
                       props=user_props(props[:1])) == 0x87
    assert pub.publish(topic, b"with-ts", qos=1, packet_id=3,
                       props=user_props([props[0], ("moat-ts", str(old + 1))])) == 0x87
    pub.publish("plain/%s" % tag, b"sentinel", qos=1, packet_id=4)
    got = until_sentinel(sub, b"sentinel")
    assert [m.payload for m in got] == [b"with-ts", b"sentinel"]
    assert received_props(got[0])[:2] == props


# ---------------------------------------------------------------------------------------------
# invalid signatures are refused

KINDS = {
    # kind: (versions, audit reason)
    "tampered_payload": ((V5, V311), "bad signature"),
    "tampered_topic": ((V5, V311), "bad signature"),
    "wrong_key": ((V5, V311), "bad signature"),
    "stale": ((V5, V311), "stale timestamp"),
    "future": ((V5, V311), "stale timestamp"),
    "missing": ((V5, V311), "missing signature"),
    "missing_ts": ((V5,), "missing timestamp"),
    "forged_trailer": ((V311,), "bad signature"),
    "garbage_base64": ((V5,), "bad signature"),
}


def refused_publish(kind, keys, alg, topic, version):
    """(payload, properties) of a PUBLISH to `topic` (under a max_age rule) that must fail."""
    key = keys.hmac if alg == "hmac-sha256" else keys.ed_private
    other = keys.hmac_other if alg == "hmac-sha256" else keys.ed_other_private
    fmt = "v5" if version == V5 else "v3"
    payload = b"firmware-image-" + os.urandom(24)
    now = int(time.time())

    def signed(k=key, t=topic, p=payload, ts="now"):
        out = sign(k, t, p, alg, fmt, ts)
        return (p, user_props(out)) if version == V5 else (out, None)

    if kind == "tampered_payload":
        if version == V5:
            _, props = signed()
            return payload + b"!", props
        wire_payload, _ = signed()
        return b"F" + wire_payload[1:], None
    if kind == "tampered_topic":
        return signed(t=topic + "-other")
    if kind == "wrong_key":
        return signed(k=other)
    if kind == "stale":
        return signed(ts=now - 3600)  # max_age is 5m
    if kind == "future":
        return signed(ts=now + 3600)
    if kind == "missing":
        # v5: no moat-sig at all; v3: a payload too short to hold the trailer.
        return (payload, [(w.PROP_USER_PROPERTY, ("moat-ts", str(now)))]) if version == V5 \
            else (b"short", None)
    if kind == "missing_ts":
        return signed(ts=None)
    if kind == "forged_trailer":
        # A fresh timestamp and random bytes where the signature goes.
        sig_size = 32 if alg == "hmac-sha256" else 64
        return payload + struct.pack(">Q", now) + os.urandom(sig_size), None
    if kind == "garbage_base64":
        return payload, user_props([("moat-sig", "not*base64!"), ("moat-ts", str(now))])
    raise AssertionError(kind)


def refusal_params(mode):
    out = []
    for kind, (versions, _) in KINDS.items():
        for version in versions:
            algs = ["hmac-sha256"] if mode == "disconnect" else ["hmac-sha256", "ed25519"]
            for alg in algs:
                out.append(pytest.param(kind, version, alg, id="%s-%s-%s" % (
                    kind, "v5" if version == V5 else "v311", alg)))
    return out


@pytest.mark.parametrize("kind,version,alg", refusal_params("drop"))
def test_invalid_signature_dropped(gw, keys, clients, wires, tag, kind, version, alg):
    prefix, rule_index = ("sig/hmac-ts", 1) if alg == "hmac-sha256" else ("sig/ed-ts", 3)
    topic = "%s/%s/x" % (prefix, tag)
    sentinel_topic = "plain/%s" % tag
    sub = subscriber(clients, gw, [topic, sentinel_topic])
    before = denied_integrity(gw)
    before_publish = gw.metric("moat_authz_denied_total", action="publish")
    pub = publisher(wires, gw, version)
    payload, props = refused_publish(kind, keys, alg, topic, version)
    code = pub.publish(topic, payload, qos=1, packet_id=5, props=props)
    # Same as a denied publish: v5 PUBACK 0x87, v3 the success code brokers give.
    assert code == (0x87 if version == V5 else 0)
    pub.publish(sentinel_topic, b"sentinel", qos=1, packet_id=6)
    got = until_sentinel(sub, b"sentinel")
    assert [(m.topic, m.payload) for m in got] == [(sentinel_topic, b"sentinel")]
    h.wait_until(lambda: denied_integrity(gw) == before + 1, 5,
                 message="moat_authz_denied_total{action=integrity} + 1")
    assert gw.metric("moat_authz_denied_total", action="publish") == before_publish
    ev = integrity_event(gw, topic)[-1]
    assert ev["rule"] == "integrity.rules[%d]" % rule_index
    assert ev["reason"] == KINDS[kind][1]
    assert ev["identity"] == "device1"
    assert ev["protocol"] == ("5.0" if version == V5 else "3.1.1")
    assert ev["client_id"].startswith("pub-device1-")


@pytest.mark.parametrize("kind,version,alg", refusal_params("disconnect"))
def test_invalid_signature_disconnects(gw, keys, clients, wires, tag, kind, version, alg):
    topic = "sig/dc/%s/x" % tag
    sub = subscriber(clients, gw, topic)
    before = denied_integrity(gw)
    pub = publisher(wires, gw, version)
    payload, props = refused_publish(kind, keys, alg, topic, version)
    pub.send(w.publish_packet(topic, payload, qos=1, packet_id=5, version=version,
                              props=props))
    # Same as on_publish_denied: disconnect: v5 DISCONNECT 0x87, v3 a plain close; no PUBACK.
    assert closing_packets(pub) == ([w.DISCONNECT] if version == V5 else [])
    assert pub.last_disconnect_reason == (0x87 if version == V5 else None)
    # A valid message from a new connection is the first (and only) delivery.
    again = publisher(wires, gw, version)
    fmt = "v5" if version == V5 else "v3"
    good = sign(keys.hmac, topic, b"valid", fmt=fmt, ts="now")
    if version == V5:
        assert again.publish(topic, b"valid", qos=1, props=user_props(good)) == 0
    else:
        assert again.publish(topic, good, qos=1) == 0
    got = until_sentinel(sub, b"valid")
    assert [m.payload for m in got] == [b"valid"]
    h.wait_until(lambda: denied_integrity(gw) == before + 1, 5,
                 message="moat_authz_denied_total{action=integrity} + 1")
    ev = integrity_event(gw, topic)[-1]
    assert (ev["rule"], ev["reason"]) == ("integrity.rules[4]", KINDS[kind][1])


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_refused_qos0_and_qos2_acknowledged_like_denied_publish(gw, clients, wires, tag,
                                                                version):
    topic = "sig/hmac/%s/q" % tag
    sentinel_topic = "plain/%s" % tag
    sub = subscriber(clients, gw, [topic, sentinel_topic])
    before = denied_integrity(gw)
    pub = publisher(wires, gw, version)
    pub.publish(topic, b"unsigned-qos0", qos=0)
    # QoS 2: v5 PUBREC 0x87 ends the flow; v3 PUBREC success, then PUBREL -> PUBCOMP from the
    # gateway (mqtt_wire completes the flow when the code is below 0x80).
    assert pub.publish(topic, b"unsigned-qos2", qos=2, packet_id=9) == (
        0x87 if version == V5 else 0)
    pub.publish(sentinel_topic, b"sentinel", qos=1, packet_id=10)
    got = until_sentinel(sub, b"sentinel")
    assert [m.payload for m in got] == [b"sentinel"]
    h.wait_until(lambda: denied_integrity(gw) == before + 2, 5,
                 message="moat_authz_denied_total{action=integrity} + 2")


# ---------------------------------------------------------------------------------------------
# replays (issue 18.8)

def replay_setup(gw, keys, clients, tag, alg, max_age):
    prefix = {("hmac-sha256", False): "sig/hmac", ("hmac-sha256", True): "sig/hmac-ts",
              ("ed25519", False): "sig/ed", ("ed25519", True): "sig/ed-ts"}[(alg, max_age)]
    topic = "%s/%s/r" % (prefix, tag)
    sentinel_topic = "plain/%s" % tag
    return topic, sentinel_topic, subscriber(clients, gw, [topic, sentinel_topic])


@pytest.mark.parametrize("alg", ["hmac-sha256", "ed25519"])
@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_timestamped_signature_not_replayed_as_other_payload(gw, keys, clients, wires, tag,
                                                             version, alg):
    """A message signed with a timestamp on a rule without max_age (moat-ts is optional there)
    must not verify as the payload `payload 0x00 ts` without one. The old signed bytes,
    topic 0 payload 0 ts, were the same for both: anyone who saw the message could publish
    a different payload under the device's signature. Now the byte after the topic says which
    form was signed (topic 0x01 ts payload)."""
    key = keys.hmac if alg == "hmac-sha256" else keys.ed_private
    topic, sentinel_topic, sub = replay_setup(gw, keys, clients, tag, alg, max_age=False)
    ts = int(time.time())
    payload = b"valve=open"
    props = sign(key, topic, payload, alg, "v5", ts)
    device = publisher(wires, gw, V5)
    assert device.publish(topic, payload, qos=1, packet_id=1, props=user_props(props)) == 0
    before = denied_integrity(gw)
    # The attacker (another identity with publish rights) re-sends the captured signature.
    forged = payload + b"\x00" + struct.pack(">Q", ts)
    sig = dict(props)["moat-sig"]
    attacker = publisher(wires, gw, version, cert="device2")
    if version == V5:
        code = attacker.publish(topic, forged, qos=1, packet_id=2,
                                props=user_props([("moat-sig", sig)]))
    else:
        code = attacker.publish(topic, forged + base64.b64decode(sig), qos=1, packet_id=2)
    assert code == (0x87 if version == V5 else 0)
    attacker.publish(sentinel_topic, b"sentinel", qos=1, packet_id=3)
    got = until_sentinel(sub, b"sentinel")
    assert [m.payload for m in got] == [payload, b"sentinel"], \
        "the timestamped signature was accepted for another payload"
    h.wait_until(lambda: denied_integrity(gw) == before + 1, 5,
                 message="moat_authz_denied_total{action=integrity} + 1")
    assert integrity_event(gw, topic)[-1]["reason"] == "bad signature"


@pytest.mark.parametrize("alg", ["hmac-sha256", "ed25519"])
@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_signature_replayed_within_max_age_refused(gw, keys, clients, wires, tag, version, alg):
    """max_age alone let a captured message be re-sent for as long as it was fresh: within
    max_age each signature is accepted once (replay cache), whichever connection or identity
    sends it again."""
    key = keys.hmac if alg == "hmac-sha256" else keys.ed_private
    topic, sentinel_topic, sub = replay_setup(gw, keys, clients, tag, alg, max_age=True)
    fmt = "v5" if version == V5 else "v3"
    payload = b"unlock-door"
    signed = sign(key, topic, payload, alg, fmt, "now")

    def send(client, packet_id):
        if version == V5:
            return client.publish(topic, payload, qos=1, packet_id=packet_id,
                                  props=user_props(signed))
        return client.publish(topic, signed, qos=1, packet_id=packet_id)

    device = publisher(wires, gw, version)
    assert send(device, 1) == 0
    before = denied_integrity(gw)
    refused = 0x87 if version == V5 else 0
    assert send(device, 2) == refused                        # the same connection
    other = publisher(wires, gw, version, cert="device2")
    assert send(other, 3) == refused                         # another identity sharing the key
    other.publish(sentinel_topic, b"sentinel", qos=1, packet_id=4)
    got = until_sentinel(sub, b"sentinel")
    assert [m.payload for m in got] == [payload, b"sentinel"], "a replay was delivered"
    h.wait_until(lambda: denied_integrity(gw) == before + 2, 5,
                 message="moat_authz_denied_total{action=integrity} + 2")
    events = integrity_event(gw, topic)
    assert [e["reason"] for e in events[-2:]] == ["replayed signature"] * 2
    assert [e["identity"] for e in events[-2:]] == ["device1", "device2"]


# ---------------------------------------------------------------------------------------------
# the wire format, computed independently

def test_wire_format_cross_check(gw, keys, clients, wires, tag, tmp_path):
    topic = "sig/hmac-ts/%s/x" % tag
    topic_plain = "sig/hmac/%s/x" % tag
    topic_ed = "sig/ed-ts/%s/x" % tag
    payload = b"cross\x00check"
    ts = int(time.time())
    secret = keys.secret(keys.hmac)

    mac = py_hmac(secret, topic, payload, ts)
    assert sign(keys.hmac, topic, payload, ts=ts) == [
        ("moat-sig", base64.b64encode(mac).decode()), ("moat-ts", str(ts))]
    assert sign(keys.hmac, topic, payload, fmt="v3", ts=ts) == \
        payload + struct.pack(">Q", ts) + mac
    mac0 = py_hmac(secret, topic_plain, payload)
    assert sign(keys.hmac, topic_plain, payload, fmt="v3") == payload + mac0

    # Ed25519 is deterministic: openssl over the same signed bytes gives the same signature.
    msg = tmp_path / "signed.bin"
    msg.write_bytes(signed_bytes(topic_ed, payload, ts))
    sig_path = tmp_path / "sig.bin"
    subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", keys.ed_private, "-rawin",
                    "-in", str(msg), "-out", str(sig_path)], check=True, capture_output=True,
                   timeout=10)
    ed_sig = sig_path.read_bytes()
    assert len(ed_sig) == 64
    assert sign(keys.ed_private, topic_ed, payload, "ed25519", ts=ts)[0] == (
        "moat-sig", base64.b64encode(ed_sig).decode())

    # Python-built signatures go through: v5 properties (unpadded base64 too) and v3 trailers.
    # (The v3 ones are made one second earlier: the same signature twice within max_age would
    # be a replay.)
    sub5 = subscriber(clients, gw, ["sig/+/%s/x" % tag])
    pub5 = publisher(wires, gw, V5)
    assert pub5.publish(topic, payload, qos=1, packet_id=1, props=user_props(
        [("moat-sig", base64.b64encode(mac).decode().rstrip("=")),
         ("moat-ts", str(ts))])) == 0
    assert pub5.publish(topic_ed, payload, qos=1, packet_id=2, props=user_props(
        [("moat-ts", str(ts)), ("moat-sig", base64.b64encode(ed_sig).decode())])) == 0
    ts3 = ts - 1
    mac3 = py_hmac(secret, topic, payload, ts3)
    ed_sig3 = sign(keys.ed_private, topic_ed, payload, "ed25519", fmt="v3", ts=ts3)[-64:]
    pub3 = publisher(wires, gw, V311)
    assert pub3.publish(topic, payload + struct.pack(">Q", ts3) + mac3, qos=1) == 0
    assert pub3.publish(topic_plain, payload + mac0, qos=1, packet_id=2) == 0
    assert pub3.publish(topic_ed, payload + struct.pack(">Q", ts3) + ed_sig3, qos=1,
                        packet_id=3) == 0
    got = sorted((sub5.get(10) or pytest.fail("missing delivery")).topic for _ in range(5))
    assert got == sorted([topic, topic_ed, topic, topic_plain, topic_ed])


# ---------------------------------------------------------------------------------------------
# stamp_identity

def test_stamp_identity_cannot_be_forged(gw, keys, clients, wires, tag):
    topic = "plain/%s/x" % tag
    sub = subscriber(clients, gw, topic)
    sub3 = subscriber(clients, gw, topic, V311, cert="device2")
    pub = publisher(wires, gw, V5)
    forged = [("a", "1"), ("moat-identity", "ops-console"), ("b", "2"),
              ("moat-identity", "device2")]
    assert pub.publish(topic, b"forged-q1", qos=1, props=user_props(forged)) == 0
    pub.publish(topic, b"forged-q0", qos=0, props=user_props([("moat-identity", "")]))
    pub.publish(topic, b"none-q0", qos=0)
    # A paho v5 publisher with another certificate is stamped with its own identity.
    other = connected(clients, gw, version=V5, cert="device2")
    other.publish(topic, b"device2", qos=1)
    expect = {
        b"forged-q1": [("a", "1"), ("b", "2"), ("moat-identity", "device1")],
        b"forged-q0": [("moat-identity", "device1")],
        b"none-q0": [("moat-identity", "device1")],
        b"device2": [("moat-identity", "device2")],
    }
    got, got3 = {}, []
    for _ in expect:  # two publishers: their messages may interleave
        m = sub.get(10)
        assert m is not None, "missing deliveries; got %r" % got
        got[m.payload] = received_props(m)
        m3 = sub3.get(10)
        assert m3 is not None
        got3.append(m3.payload)
    assert got == expect
    assert sorted(got3) == sorted(expect)


def test_topic_alias_with_signing_and_stamping(gw, keys, clients, wires, tag):
    topic = "sig/hmac/%s/a" % tag
    plain = "plain/%s/a" % tag
    sub = subscriber(clients, gw, [topic, plain])
    pub = publisher(wires, gw, V5)
    alias1, alias2 = (w.PROP_TOPIC_ALIAS, 1), (w.PROP_TOPIC_ALIAS, 2)

    def signed(t, p, extra):
        return user_props(sign(keys.hmac, t, p)) + [extra]

    assert pub.publish(topic, b"first", qos=1, packet_id=1,
                       props=signed(topic, b"first", alias1)) == 0
    # Alias only: the signature covers the topic the alias stands for ...
    assert pub.publish("", b"second", qos=1, packet_id=2,
                       props=signed(topic, b"second", alias1)) == 0
    # ... not the empty topic on the wire, nor another topic.
    over_empty = base64.b64encode(py_hmac(keys.secret(keys.hmac), "", b"third")).decode()
    assert pub.publish("", b"third", qos=1, packet_id=3,
                       props=user_props([("moat-sig", over_empty)]) + [alias1]) == 0x87
    assert pub.publish("", b"fourth", qos=1, packet_id=4,
                       props=signed(topic + "x", b"fourth", alias1)) == 0x87
    # Missing signature through an alias to a signed topic.
    assert pub.publish("", b"fifth", qos=1, packet_id=5, props=[alias1]) == 0x87
    # Unsigned topic through an alias, stamped too.
    assert pub.publish(plain, b"p1", qos=1, packet_id=6,
                       props=[alias2, (w.PROP_USER_PROPERTY, ("moat-identity", "x"))]) == 0
    assert pub.publish("", b"p2", qos=1, packet_id=7, props=[alias2]) == 0
    got = until_sentinel(sub, b"p2")
    assert [(m.topic, m.payload) for m in got] == [
        (topic, b"first"), (topic, b"second"), (plain, b"p1"), (plain, b"p2")]
    for m in got:
        identities = [v for k, v in received_props(m) if k == "moat-identity"]
        assert identities == ["device1"], (m.payload, received_props(m))


def test_stamp_identity_off(moat_factory, keys, clients, wires):
    moat = moat_factory({"integrity": {"rules": [
        rule("sig/hmac", "hmac-sha256", None, "drop", keys.hmac)]}})
    sub = subscriber(clients, moat, "#")
    pub = publisher(wires, moat, V5)
    props = sign(keys.hmac, "sig/hmac/x", b"signed")
    assert pub.publish("sig/hmac/x", b"signed", qos=1, props=user_props(props)) == 0
    # Without stamp_identity an allowed PUBLISH is forwarded unchanged (CONTRACT.md §3),
    # user properties included.
    assert pub.publish("plain/x", b"p", qos=1, packet_id=2,
                       props=user_props([("moat-identity", "claimed")])) == 0
    m = sub.get(10)
    assert m is not None and (m.payload, received_props(m)) == (b"signed", props)
    m = sub.get(10)
    assert m is not None and (m.payload, received_props(m)) == (
        b"p", [("moat-identity", "claimed")])


def test_stamp_identity_follows_reload(moat_factory, clients, wires):
    """Switching stamp_identity on by a reload applies to sessions already connected."""
    moat = moat_factory()
    sub = subscriber(clients, moat, "#")
    pub = publisher(wires, moat, V5)
    assert pub.publish("plain/r", b"before", qos=1,
                       props=user_props([("moat-identity", "claimed")])) == 0
    m = sub.get(10)
    assert m is not None and received_props(m) == [("moat-identity", "claimed")]

    ok = moat.metric("moat_config_reloads_total", result="ok")
    moat.write_config(h.deep_merge(moat.config, {"integrity": {"stamp_identity": True}}))
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > ok, 10,
                 message="reload ok")
    assert pub.publish("plain/r", b"after", qos=1, packet_id=2,
                       props=user_props([("moat-identity", "claimed")])) == 0
    m = sub.get(10)
    assert m is not None and m.payload == b"after"
    assert received_props(m) == [("moat-identity", "device1")]


# ---------------------------------------------------------------------------------------------
# wills: the broker publishes them for the client, so they are held to the same rules

@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_will_under_signed_rule(gw, keys, clients, wires, tag, version):
    topic = "sig/hmac-ts/%s/will" % tag
    sub = subscriber(clients, gw, topic)
    before = denied_integrity(gw)
    refused = 0x87 if version == V5 else 5
    fmt = "v5" if version == V5 else "v3"
    payload = b"last-gasp\x00" + os.urandom(8)

    def will(payload_, props=None):
        return {"topic": topic, "payload": payload_, "qos": 1, "props": props}

    # Unsigned, stale and tampered wills are refused at CONNECT like a will rule.
    stale = sign(keys.hmac, topic, payload, fmt=fmt, ts=int(time.time()) - 3600)
    tampered = sign(keys.hmac, topic, payload + b"!", fmt=fmt, ts="now")
    cases = [will(payload)]
    if version == V5:
        cases += [will(payload, user_props(stale)), will(payload, user_props(tampered))]
    else:
        cases += [will(stale), will(b"X" + tampered[1:])]
    for i, wl in enumerate(cases):
        c = wires(gw, cert="device1", version=version)
        assert c.connect("will-bad-%s-%d" % (tag, i), will=wl) == refused, i
    h.wait_until(lambda: denied_integrity(gw) == before + len(cases), 5,
                 message="moat_authz_denied_total{action=integrity} + %d" % len(cases))
    evs = integrity_event(gw, topic)
    assert sorted(e["reason"] for e in evs) == [
        "bad signature", "missing signature", "stale timestamp"]
    assert all(e["rule"] == "integrity.rules[1]" and e["identity"] == "device1" for e in evs)

    # A valid signature is accepted; the will reaches subscribers as the original payload
    # (v3: trailer stripped), stamped with the identity (v5).
    good = sign(keys.hmac, topic, payload, fmt=fmt, ts="now")
    c = wires(gw, cert="device1", version=version)
    wl = will(payload, user_props(good + [("moat-identity", "ops-console")])) \
        if version == V5 else will(good)
    assert c.connect("will-good-%s" % tag, will=wl) == 0
    c.abort()
    m = sub.get(10)
    assert m is not None and (m.topic, m.payload) == (topic, payload)
    if version == V5:
        assert received_props(m) == good + [("moat-identity", "device1")]
    sub.expect_none(0.3)


def test_will_stamped_and_not_forged(gw, clients, wires, tag):
    topic = "plain/%s/will" % tag
    sub = subscriber(clients, gw, topic)
    c = wires(gw, cert="device1", version=V5)
    forged = user_props([("moat-identity", "ops-console"), ("k", "v")])
    assert c.connect("will-stamp-%s" % tag, will={
        "topic": topic, "payload": b"bye", "props": [(0x18, 0)] + forged}) == 0
    c.abort()
    m = sub.get(10)
    assert m is not None and m.payload == b"bye"
    assert received_props(m) == [("k", "v"), ("moat-identity", "device1")]


# ---------------------------------------------------------------------------------------------
# per-identity keys (%u)

def test_per_identity_keys(gw, keys, clients, wires, tag):
    t1 = "devices/device1/firmware/%s" % tag
    t2 = "devices/device2/firmware/%s" % tag
    sentinel_topic = "plain/%s" % tag
    sub = subscriber(clients, gw, ["devices/+/firmware/%s" % tag, sentinel_topic])
    before = denied_integrity(gw)
    k1, k2 = keys.identity_path("device1"), keys.identity_path("device2")
    d1 = publisher(wires, gw, V5, "device1")
    d2 = publisher(wires, gw, V5, "device2")
    d2v3 = publisher(wires, gw, V311, "device2")

    s1 = user_props(sign(k1, t1, b"by-device1"))
    assert d1.publish(t1, b"by-device1", qos=1, props=s1) == 0
    # device2 replays device1's exact signed message: checked against device2's key.
    assert d2.publish(t1, b"by-device1", qos=1, props=s1) == 0x87
    assert d2v3.publish(t1, sign(k1, t1, b"by-device1", fmt="v3"), qos=1) == 0
    # device1 cannot use device2's key either.
    assert d1.publish(t2, b"k2-by-device1", qos=1, packet_id=2,
                      props=user_props(sign(k2, t2, b"k2-by-device1"))) == 0x87
    # Each with its own key is fine; the file's trailing newline is not part of the secret.
    assert d2.publish(t2, b"by-device2", qos=1, packet_id=2,
                      props=user_props(sign(k2, t2, b"by-device2"))) == 0
    mac = py_hmac(keys.identity_secret["device1"], t1, b"python")
    assert d1.publish(t1, b"python", qos=1, packet_id=3, props=user_props(
        [("moat-sig", base64.b64encode(mac).decode())])) == 0
    # An identity without a key file (ops-console) cannot publish under the rule at all.
    ops = publisher(wires, gw, V5, "operator1")
    assert ops.publish(t1, b"by-ops", qos=1, props=s1) == 0x87
    d1.publish(sentinel_topic, b"sentinel", qos=1, packet_id=4)
    got = until_sentinel(sub, b"sentinel")
    delivered = [(m.topic, m.payload) for m in got if m.topic != sentinel_topic]
    assert sorted(delivered) == sorted([(t1, b"by-device1"), (t2, b"by-device2"),
                                        (t1, b"python")])
    for m in got:
        if m.payload == b"by-device2":
            assert ("moat-identity", "device2") in received_props(m)
    h.wait_until(lambda: denied_integrity(gw) == before + 4, 5,
                 message="moat_authz_denied_total{action=integrity} + 4")
    evs = [e for e in gw.audit_events("authz_denied") if e.get("action") == "integrity"
           and e.get("topic") in (t1, t2)]
    assert sorted((e["identity"], e["reason"]) for e in evs) == sorted([
        ("device2", "bad signature"), ("device2", "bad signature"),
        ("device1", "bad signature"), ("ops-console", "no key")])
    assert all(e["rule"] == "integrity.rules[%d]" % PER_IDENTITY_RULE for e in evs)


# ---------------------------------------------------------------------------------------------
# key rotation

def _replace(path, data):
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _rotating_gateway(moat_factory, tmp_path, prefix):
    """A gateway with a fixed HMAC key for `prefix/#` and per-identity keys for firmware
    topics. Returns (moat, fixed key path, device1's key path, secrets a b c d): a is the
    fixed key and c device1's at start; b and d are the keys to rotate to."""
    fixed = str(tmp_path / (prefix + ".key"))
    ids = tmp_path / (prefix + "-ids")
    ids.mkdir()
    per_identity = str(ids / "device1.key")
    a, b, c, d = (Keys.random_secret() for _ in range(4))
    _replace(fixed, a)
    _replace(per_identity, c)
    moat = moat_factory({"integrity": {"rules": [
        rule("sig/" + prefix, "hmac-sha256", None, "drop", fixed),
        {"topics": ["devices/+/firmware/#"], "key": str(ids / "%u.key")},
    ]}})
    return moat, fixed, per_identity, (a, b, c, d)


def test_key_rotation_on_sighup(moat_factory, keys, clients, wires, tmp_path):
    moat, fixed, per_identity, (a, b, c, d) = _rotating_gateway(moat_factory, tmp_path, "rot")
    sub = subscriber(clients, moat, ["sig/rot/#", "devices/+/firmware/#"])
    live = publisher(wires, moat, V5)

    def props(secret, topic, payload):
        return user_props([("moat-sig", base64.b64encode(
            py_hmac(secret, topic, payload)).decode())])

    fw = "devices/device1/firmware/x"
    ids_ = iter(range(1, 100))

    def pub(client, secret, topic, payload):
        return client.publish(topic, payload, qos=1, packet_id=next(ids_),
                              props=props(secret, topic, payload))

    assert pub(live, a, "sig/rot/x", b"a-before") == 0
    assert pub(live, c, fw, b"c-before") == 0

    ok = moat.metric("moat_config_reloads_total", result="ok")
    _replace(fixed, b)
    _replace(per_identity, d)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > ok, 10,
                 message="reload ok")
    # The live connection follows the new keys.
    assert pub(live, a, "sig/rot/x", b"a-after") == 0x87
    assert pub(live, b, "sig/rot/x", b"b-after") == 0
    assert pub(live, c, fw, b"c-after") == 0x87
    assert pub(live, d, fw, b"d-after") == 0
    fresh = publisher(wires, moat, V5)
    assert pub(fresh, b, "sig/rot/x", b"b-fresh") == 0
    assert pub(fresh, d, fw, b"d-fresh") == 0

    # A key file that does not load fails the reload; the keys in use stay.
    failed = moat.metric("moat_config_reloads_total", result="failed")
    _replace(fixed, b"")
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="failed") > failed,
                 10, message="reload failed")
    assert pub(live, b, "sig/rot/x", b"b-kept") == 0

    got = until_sentinel(sub, b"b-kept")
    assert sorted(m.payload for m in got) == sorted(
        [b"a-before", b"c-before", b"b-after", b"d-after", b"b-fresh", b"d-fresh", b"b-kept"])


def test_key_rotation_by_file_watch(moat_factory, keys, clients, wires, tmp_path):
    """Key files are watched like certificates: replacing one (fixed or `%u`) reloads without
    a SIGHUP, and live sessions verify with the new key."""
    moat, fixed, per_identity, (a, b, c, d) = _rotating_gateway(moat_factory, tmp_path,
                                                                "watch")
    live = publisher(wires, moat, V5)
    ids_ = iter(range(1, 100))

    def pub(secret, topic, payload):
        return live.publish(topic, payload, qos=1, packet_id=next(ids_), props=user_props(
            [("moat-sig", base64.b64encode(py_hmac(secret, topic, payload)).decode())]))

    fw = "devices/device1/firmware/w"
    assert pub(a, "sig/watch/x", b"1") < 0x80  # 0x10: no subscribers, still accepted
    for path, new in ((fixed, b), (per_identity, d)):
        ok = moat.metric("moat_config_reloads_total", result="ok")
        _replace(path, new)
        h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > ok, 10,
                     message="reload after %s changed" % os.path.basename(path))
    assert pub(a, "sig/watch/x", b"2") == 0x87
    assert pub(b, "sig/watch/x", b"3") < 0x80
    assert pub(c, fw, b"4") == 0x87
    assert pub(d, fw, b"5") < 0x80
