"""Token authentication (issue 24, CONTRACT §2 auth.token, §3 "Tokens"): JWTs minted by an
independent implementation (PyJWT, Debian python3-jwt) for RS256, ES256, EdDSA and HS256;
every refusal with its audit reason; expiry ending a live session; v5 re-authentication
(AUTH 0x19) extending one; a local HTTPS JWKS server with key rotation. Tokens never appear
in any log, and the broker never sees a refused client nor the jwt authentication data."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import ssl
import struct
import subprocess
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import moat_harness as h
import mqtt_wire as w
from moat_harness import V311, V5, connected

REFUSED = {V5: 0x86, V311: 4}
HMAC_SECRET = b"an-hmac-secret-that-is-32-bytes-or-more!"
AUTH = 15
PROP_AUTH_METHOD = 0x15
PROP_AUTH_DATA = 0x16


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def keys():
    return {
        "RS256": rsa.generate_private_key(65537, 2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


def write_keys(tmp_path, keys):
    paths = []
    for alg, key in keys.items():
        p = tmp_path / ("%s.pem" % alg)
        p.write_bytes(pem_public(key))
        paths.append(str(p))
    secret = tmp_path / "idp.secret"
    secret.write_bytes(HMAC_SECRET + b"\n")
    return paths, str(secret)


def token_overrides(tmp_path, keys, methods=("token",), require="any", **token):
    paths, secret = write_keys(tmp_path, keys)
    t = {"keys": paths, "hmac_secrets": [secret], "issuer": "https://idp.test",
         "audience": "moat", "leeway": "2s", "max_lifetime": "1h"}
    t.update(token)
    return {"auth": {"methods": list(methods), "require": require, "token": t}}


def mint(keys, alg="RS256", sub="alice", lifetime=300, kid=None, **claims):
    now = int(time.time())
    body = {"sub": sub, "iss": "https://idp.test", "aud": "moat", "iat": now,
            "exp": now + lifetime}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    key = HMAC_SECRET if alg == "HS256" else keys[alg]
    headers = {"kid": kid} if kid else None
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def assert_not_logged(moat, *tokens):
    texts = [moat.stderr()]
    if os.path.exists(moat.audit_path):
        texts.append(open(moat.audit_path).read())
    for t in tokens:
        sig = t.rsplit(".", 1)[1]
        for text in texts:
            assert t not in text and sig not in text


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA", "HS256"])
@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_token_connects_for_each_algorithm(moat_factory, broker, clients, keys, tmp_path, alg,
                                           version):
    moat = moat_factory(token_overrides(tmp_path, keys), tls={"require_client_cert": False})
    tok = mint(keys, alg, sub="alice-%s" % alg.lower())
    c = connected(clients, moat, version=version, cert=None, username="ignored", password=tok,
                  client_id="tok-%s" % alg)
    assert c.subscribe("t/x") in ([0], [0x00])
    # The broker sees the token's identity as username and no password (credentials: identity).
    broker.wait_log(r"as tok-%s .*u'alice-%s'" % (alg, alg.lower()))
    assert moat.metric("moat_auth_total", method="token", result="success") >= 1
    assert_not_logged(moat, tok)


REFUSALS = [
    ("expired", dict(lifetime=-60), "token expired"),
    ("wrong audience", dict(aud="other"), "wrong audience"),
    ("wrong issuer", dict(iss="https://evil.test"), "wrong issuer"),
    ("no exp", dict(exp=None), "token has no exp"),
    ("not yet valid", dict(nbf=int(time.time()) + 600), "token not yet valid"),
    ("too long", dict(lifetime=7200), "token lifetime above max_lifetime"),
    ("no identity", dict(sub=None), "token has no identity claim"),
]


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_token_refusals(moat_factory, broker, clients, keys, tmp_path, version):
    moat = moat_factory(token_overrides(tmp_path, keys,
                                        algorithms=["RS256", "ES256", "EdDSA", "HS256"]),
                        tls={"require_client_cert": False})
    cases = [(name, mint(keys, "ES256", **kw), reason) for name, kw, reason in REFUSALS]
    good = mint(keys, "RS256")
    # Tampered: claims of one token, signature of another.
    other = mint(keys, "RS256", sub="admin")
    cases.append(("bad signature", other.rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1],
                  "bad signature"))
    # Signed by a key Moat does not hold.
    stranger = {"ES256": ec.generate_private_key(ec.SECP256R1())}
    cases.append(("unknown key", mint(stranger, "ES256"), "bad signature"))
    # Algorithm confusion: HS256 "signed" with the RSA public key PEM as the secret (PyJWT
    # refuses to do this, so it is done by hand): only the configured secret is an HMAC key.
    pem = pem_public(keys["RS256"])
    now = int(time.time())
    signing = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64url(
        json.dumps({"sub": "admin", "iss": "https://idp.test", "aud": "moat", "iat": now,
                    "exp": now + 60}).encode())
    forged = signing + "." + b64url(hmac.new(pem, signing.encode(), hashlib.sha256).digest())
    cases.append(("confusion", forged, "bad signature"))
    # "none".
    cases.append(("none", jwt.encode({"sub": "admin", "exp": now + 60}, None, algorithm="none")
                  + "c2ln", "algorithm not allowed"))
    # Duplicate claims: the signature is good, the JSON is ambiguous.
    dup_claims = ('{"sub":"alice","sub":"admin","iss":"https://idp.test","aud":"moat",'
                  '"iat":%d,"exp":%d}' % (now, now + 60)).encode()
    dup = jwt.api_jws.PyJWS().encode(dup_claims, keys["ES256"], algorithm="ES256")
    cases.append(("duplicate claims", dup, "token malformed: claims duplicate key"))
    for i, (name, tok, reason) in enumerate(cases):
        cid = "bad-%d" % i
        c = clients(moat, version=version, cert=None, username="u", password=tok, client_id=cid)
        assert c.connect() == REFUSED[version], name
        moat.wait_audit(lambda e, cid=cid: e.get("event") == "auth_failure" and
                        e.get("client_id") == cid, message=name)
        events = [e for e in moat.audit_events("auth_failure") if e.get("client_id") == cid]
        assert events[0].get("reason") == reason, (name, events)
        assert ("as %s " % cid) not in broker.log()
    assert moat.metric("moat_auth_total", method="token", result="failure") >= len(cases)
    assert_not_logged(moat, good, *[t for _, t, _ in cases])


def test_password_and_token_side_by_side(moat_factory, broker, clients, keys, tmp_path):
    pw = str(tmp_path / "passwd")
    r = subprocess.run([h.moat_bin(), "passwd", pw, "bob"], input="b0b-Pa55word\n",
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    over = token_overrides(tmp_path, keys, methods=("password", "token"))
    over["auth"]["password_file"] = pw
    moat = moat_factory(over, tls={"require_client_cert": False})
    connected(clients, moat, version=V311, cert=None, username="bob", password="b0b-Pa55word",
              client_id="pw-bob")
    connected(clients, moat, version=V311, cert=None, username="x", password=mint(keys),
              client_id="tok-alice")
    assert moat.metric("moat_auth_total", method="password", result="success") >= 1
    assert moat.metric("moat_auth_total", method="token", result="success") >= 1


def test_certificate_and_token_mfa_needs_one_identity(moat_factory, broker, clients, keys,
                                                      tmp_path):
    moat = moat_factory(token_overrides(tmp_path, keys, methods=("certificate", "token"),
                                        require="all"))
    # device1's certificate CN is "device1".
    good = clients(moat, version=V5, cert="device1", username="x",
                   password=mint(keys, sub="device1"), client_id="mfa-good")
    assert good.connect() == 0
    other = clients(moat, version=V5, cert="device1", username="x",
                    password=mint(keys, sub="device2"), client_id="mfa-other")
    assert other.connect() == 0x87
    cert_only = clients(moat, version=V5, cert="device1", client_id="mfa-cert-only")
    assert cert_only.connect() == 0x86


def test_moat_check_refuses_password_and_token_with_require_all(tmp_path, keys, certs):
    cfg = h.default_config(certs, 1883, h.free_port(), h.free_port(), str(tmp_path / "a.log"))
    over = token_overrides(tmp_path, keys, methods=("password", "token"), require="all")
    (tmp_path / "passwd").write_text("")
    over["auth"]["password_file"] = str(tmp_path / "passwd")
    cfg = h.deep_merge(cfg, over)
    path = tmp_path / "moat.yaml"
    import yaml
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([h.moat_bin(), "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "cannot combine the password and token methods" in r.stdout + r.stderr


# ------------------------------------------------------------------ live sessions

def auth_props(tok):
    return [(PROP_AUTH_METHOD, "jwt"), (PROP_AUTH_DATA, tok)]


def auth_packet(reason, props):
    return w.packet(AUTH, 0, bytes([reason]) + w.properties(props))


def decode_props(body, off):
    plen, off = w.decode_varint(body, off)
    end = off + plen
    out = {}
    while off < end:
        pid = body[off]
        off += 1
        if pid in (0x15, 0x16, 0x1F, 0x12, 0x1A, 0x1C):
            n = struct.unpack("!H", body[off:off + 2])[0]
            out[pid] = body[off + 2:off + 2 + n]
            off += 2 + n
        elif pid in (0x11, 0x27, 0x02, 0x18):
            off += 4
        elif pid in (0x21, 0x13, 0x22):
            off += 2
        elif pid == 0x26:
            for _ in range(2):
                n = struct.unpack("!H", body[off:off + 2])[0]
                off += 2 + n
        else:
            off += 1
    return out


def test_expiry_ends_a_live_session(moat_factory, broker, keys, tmp_path):
    moat = moat_factory(token_overrides(tmp_path, keys, leeway="0s"),
                        tls={"require_client_cert": False})
    v5 = moat.wire(cert=None, version=5)
    assert v5.connect("exp-v5", username="u", password=mint(keys, lifetime=2)) == 0
    v3 = moat.wire(cert=None, version=4)
    assert v3.connect("exp-v3", username="u", password=mint(keys, lifetime=2)) == 0
    assert v5.wait_closed(timeout=10) == 0xA0  # maximum connect time
    assert v3.wait_closed(timeout=10) is None  # v3: closed
    moat.wait_audit(lambda e: e.get("event") == "disconnect" and e.get("reason") ==
                    "token expired" and e.get("client_id") == "exp-v5")


def test_v5_reauthentication_extends_the_session(moat_factory, broker, keys, tmp_path):
    moat = moat_factory(token_overrides(tmp_path, keys, leeway="0s"),
                        tls={"require_client_cert": False})
    c = moat.wire(cert=None, version=5)
    first = mint(keys, "EdDSA", lifetime=3)
    c.send(w.connect_packet("reauth", version=5, props=auth_props(first)))
    ack = c.read_packet()
    assert ack.type == w.CONNACK and ack.body[1] == 0
    # The CONNACK echoes the method (MQTT 5 §4.12); the broker never saw it.
    assert decode_props(ack.body, 2).get(PROP_AUTH_METHOD) == b"jwt"
    broker.wait_log(r"as reauth ")
    # Fresh token: AUTH 0x19 → AUTH 0x00, and the session outlives the first token.
    c.send(auth_packet(0x19, auth_props(mint(keys, "EdDSA", lifetime=60))))
    reply = c.expect(AUTH)
    assert reply.body[0] == 0x00
    assert decode_props(reply.body, 1).get(PROP_AUTH_METHOD) == b"jwt"
    time.sleep(4.5)  # past the first token's exp (no timing threshold asserted)
    assert c.subscribe([("t/#", 0)]) == [0]
    # A bad token ends the session with 0x87.
    c.send(auth_packet(0x19, auth_props(mint(keys, "EdDSA", lifetime=-30))))
    assert c.wait_closed(timeout=10) == 0x87
    moat.wait_audit(lambda e: e.get("event") == "auth_failure" and
                    "re-authentication refused: token expired" in e.get("reason", ""))
    assert "jwt" not in broker.log()


def test_auth_without_jwt_method_is_a_protocol_error(moat_factory, broker, keys, tmp_path):
    moat = moat_factory(token_overrides(tmp_path, keys), tls={"require_client_cert": False})
    c = moat.wire(cert=None, version=5)
    assert c.connect("plain-tok", username="u", password=mint(keys)) == 0
    c.send(auth_packet(0x19, auth_props(mint(keys))))
    assert c.wait_closed(timeout=10) == 0x82


# ------------------------------------------------------------------ JWKS over HTTPS

class JwksServer:
    def __init__(self, certs):
        self.doc = {"keys": []}
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                body = json.dumps(server.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((h.HOST, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.path("server.pem"), certs.path("server.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "https://127.0.0.1:%d/jwks.json" % self.port

    def set_keys(self, *pairs):
        keys = []
        for kid, key in pairs:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig", alg="ES256")
            keys.append(jwk)
        self.doc = {"keys": keys}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_jwks_url_with_key_rotation(moat_factory, broker, clients, certs, tmp_path):
    server = JwksServer(certs)
    try:
        k1 = ec.generate_private_key(ec.SECP256R1())
        k2 = ec.generate_private_key(ec.SECP256R1())
        server.set_keys(("k1", k1))
        over = {"auth": {"methods": ["token"], "token": {
            "jwks_url": server.url(), "jwks_ca": certs.ca, "jwks_refresh": "1h",
            "algorithms": ["ES256"], "audience": "moat", "issuer": "https://idp.test"}}}
        moat = moat_factory(over, tls={"require_client_cert": False})
        h.wait_until(lambda: moat.metric("moat_jwks_fetch_total", result="ok") >= 1,
                     message="first JWKS fetch")
        connected(clients, moat, version=V5, cert=None, username="u",
                  password=mint({"ES256": k1}, "ES256", kid="k1"), client_id="jwks-k1")
        # The IdP rotates to k2: a token with the new kid triggers one refresh and connects,
        # without a restart.
        server.set_keys(("k1", k1), ("k2", k2))
        connected(clients, moat, version=V5, cert=None, username="u",
                  password=mint({"ES256": k2}, "ES256", kid="k2"), client_id="jwks-k2")
        assert moat.metric("moat_jwks_fetch_total", result="ok") >= 2
        # A made-up kid right after is refused without another fetch (rate-limited).
        before = server.requests
        bad = clients(moat, version=V5, cert=None, username="u",
                      password=mint({"ES256": k2}, "ES256", kid="k9"), client_id="jwks-k9")
        assert bad.connect() == 0x86
        assert server.requests == before
        events = [e for e in moat.audit_events("auth_failure") if e.get("client_id") == "jwks-k9"]
        assert events and events[0]["reason"] == "unknown key"
        # The IdP fails: the last good keys stay.
        server.close()
        connected(clients, moat, version=V5, cert=None, username="u",
                  password=mint({"ES256": k1}, "ES256", kid="k1"), client_id="jwks-after")
    finally:
        try:
            server.close()
        except Exception:
            pass


def test_jwks_file_is_watched_and_reloaded(moat_factory, broker, clients, tmp_path):
    k1 = ec.generate_private_key(ec.SECP256R1())
    k2 = ec.generate_private_key(ec.SECP256R1())

    def write(*pairs):
        keys = []
        for kid, key in pairs:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk.update(kid=kid)
            keys.append(jwk)
        tmp = tmp_path / "jwks.json.tmp"
        tmp.write_text(json.dumps({"keys": keys}))
        os.replace(tmp, tmp_path / "jwks.json")

    write(("k1", k1))
    over = {"auth": {"methods": ["token"], "token": {"jwks_file": str(tmp_path / "jwks.json")}}}
    moat = moat_factory(over, tls={"require_client_cert": False})
    connected(clients, moat, version=V311, cert=None, username="u",
              password=mint({"ES256": k1}, "ES256", kid="k1", iss=None, aud=None),
              client_id="file-k1")
    before = moat.metric("moat_config_reloads_total", result="ok")
    write(("k2", k2))
    h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > before,
                 timeout=10, message="reload after the JWKS file changed")
    connected(clients, moat, version=V311, cert=None, username="u",
              password=mint({"ES256": k2}, "ES256", kid="k2", iss=None, aud=None),
              client_id="file-k2")
    old = clients(moat, version=V311, cert=None, username="u",
                  password=mint({"ES256": k1}, "ES256", kid="k1", iss=None, aud=None),
                  client_id="file-k1-again")
    assert old.connect() == 4


# ------------------------------------------------------------------ jose (npm)

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def jose_missing():
    import shutil
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "jose")):
        return "tests/integration/js/node_modules/jose is missing: run `npm ci` there"
    return None


def mint_jose(keys, alg, **claims):
    now = int(time.time())
    body = {"sub": "alice", "iss": "https://idp.test", "aud": "moat", "iat": now,
            "exp": now + 300}
    body.update(claims)
    req = {"alg": alg, "claims": body}
    if alg == "HS256":
        req["secret_b64"] = base64.b64encode(HMAC_SECRET).decode()
    else:
        req["key"] = keys[alg].private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
    r = subprocess.run(["node", os.path.join(JS_DIR, "mint_jose.js")], input=json.dumps(req),
                       capture_output=True, text=True, timeout=30, cwd=JS_DIR)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.skipif(jose_missing() is not None, reason=jose_missing() or "")
def test_tokens_minted_by_jose(moat_factory, broker, clients, keys, tmp_path):
    moat = moat_factory(token_overrides(tmp_path, keys), tls={"require_client_cert": False})
    for alg in ("RS256", "ES256", "EdDSA", "HS256"):
        tok = mint_jose(keys, alg, sub="jose-%s" % alg.lower())
        connected(clients, moat, version=V5, cert=None, username="u", password=tok,
                  client_id="jose-%s" % alg)
        bad = clients(moat, version=V5, cert=None, username="u",
                      password=mint_jose(keys, alg, aud="elsewhere"),
                      client_id="jose-bad-%s" % alg)
        assert bad.connect() == 0x86
    for alg in ("RS256", "ES256", "EdDSA", "HS256"):
        broker.wait_log(r"as jose-%s .*u'jose-%s'" % (alg, alg.lower()))


def test_roles_claim_gives_the_token_its_roles(moat_factory, broker, keys, tmp_path):
    over = token_overrides(tmp_path, keys, roles_claim="roles")
    over["policy"] = {"default_roles": ["device"],
                      "roles": {"device": {"publish": ["dev/%u/#"], "subscribe": ["dev/%u/#"]},
                                "operator": {"publish": ["ops/#"], "subscribe": ["ops/#"]}}}
    moat = moat_factory(over, tls={"require_client_cert": False})
    ops = moat.wire(cert=None, version=5)
    assert ops.connect("roles-ops", username="u",
                       password=mint(keys, sub="ann", roles=["operator", "admin"])) == 0
    assert ops.publish("ops/reboot", b"x", qos=1) < 0x80  # 0x10: no matching subscribers
    assert ops.publish("dev/ann/t", b"x", qos=1) == 0x87  # roles replace default_roles
    plain = moat.wire(cert=None, version=5)
    assert plain.connect("roles-none", username="u", password=mint(keys, sub="bob")) == 0
    assert plain.publish("dev/bob/t", b"x", qos=1) < 0x80
    assert plain.publish("ops/reboot", b"x", qos=1) == 0x87
    moat.wait_audit(lambda e: e.get("event") == "authz_denied" and e.get("action") == "role" and
                    e.get("rule") == "admin" and e.get("client_id") == "roles-ops")
