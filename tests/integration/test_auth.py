"""Authentication (CONTRACT.md §2 auth, §3): passwords, MFA, certificate checks, identities,
client ids, anonymous. A refused client never reaches the broker."""

import os
import subprocess

import pytest

import moat_harness as h
from moat_harness import V311, V5, connected

REFUSED_PASSWORD = {V5: 0x86, V311: 4}
REFUSED_NOT_AUTHORIZED = {V5: 0x87, V311: 5}


def mosquitto_passwd(path, user, password):
    args = ["mosquitto_passwd", "-b", path, user, password]
    if not os.path.exists(path):
        args.insert(1, "-c")
    subprocess.run(args, check=True, capture_output=True, timeout=10)
    return path


def moat_passwd(path, user, password):
    r = subprocess.run([h.moat_bin(), "passwd", path, user], input=password + "\n",
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return path


def password_overrides(path, require="any", methods=("password",), **auth):
    over = {"auth": dict({"methods": list(methods), "require": require, "password_file": path},
                         **auth)}
    return over


def assert_never_reached_broker(broker, client_id):
    assert ("as %s " % client_id) not in broker.log(), broker.log()


@pytest.mark.parametrize("tool", ["mosquitto_passwd", "moat_passwd"])
@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_password_any(moat_factory, broker, clients, tmp_path, tool, version):
    pw = str(tmp_path / "passwd")
    make = mosquitto_passwd if tool == "mosquitto_passwd" else moat_passwd
    make(pw, "alice", "s3cret-A")
    make(pw, "bob", "other-B")
    moat = moat_factory(password_overrides(pw), tls={"require_client_cert": False})
    good = connected(clients, moat, version=version, cert=None, username="alice",
                     password="s3cret-A", client_id="pw-good")
    assert good.subscribe("pw/t") in ([0], [0x00])
    bad = clients(moat, version=version, cert=None, username="alice",
                  password="Wr0ng-Pa55-42", client_id="pw-bad")
    assert bad.connect() == REFUSED_PASSWORD[version]
    unknown = clients(moat, version=version, cert=None, username="mallory", password="x",
                      client_id="pw-unknown")
    assert unknown.connect() == REFUSED_PASSWORD[version]
    none = clients(moat, version=version, cert=None, client_id="pw-none")
    assert none.connect() in (REFUSED_PASSWORD[version], REFUSED_NOT_AUTHORIZED[version])
    broker.wait_log(r"as pw-good ")
    for cid in ("pw-bad", "pw-unknown", "pw-none"):
        assert_never_reached_broker(broker, cid)
    # A password never appears in any log.
    for text in (moat.stderr(), open(moat.audit_path).read() if os.path.exists(
            moat.audit_path) else ""):
        assert "s3cret-A" not in text and "Wr0ng-Pa55-42" not in text
    failures = moat.audit_events("auth_failure")
    assert any(e.get("client_id") == "pw-bad" for e in failures), failures
    assert moat.metric("moat_auth_total", method="password", result="failure") >= 2
    assert moat.metric("moat_auth_total", method="password", result="success") >= 1


def test_password_file_hash_is_not_plaintext(tmp_path):
    pw = moat_passwd(str(tmp_path / "passwd"), "carol", "pa55word")
    text = open(pw).read()
    assert text.startswith("carol:$7$") or text.startswith("carol:$6$"), text
    assert "pa55word" not in text


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_mfa_require_all(moat_factory, broker, clients, tmp_path, version):
    pw = mosquitto_passwd(str(tmp_path / "passwd"), "device1", "mfa-pass")
    moat = moat_factory(password_overrides(pw, require="all",
                                           methods=["certificate", "password"]),
                        tls={"require_client_cert": False})
    ok = connected(clients, moat, version=version, cert="device1", username="device1",
                   password="mfa-pass", client_id="mfa-ok")
    ok.subscribe("mfa/t")
    cert_only = clients(moat, version=version, cert="device1", client_id="mfa-cert-only")
    assert cert_only.connect() in (REFUSED_PASSWORD[version], REFUSED_NOT_AUTHORIZED[version])
    pass_only = clients(moat, version=version, cert=None, username="device1",
                        password="mfa-pass", client_id="mfa-pass-only")
    assert pass_only.connect() in (REFUSED_PASSWORD[version], REFUSED_NOT_AUTHORIZED[version])
    wrong_pw = clients(moat, version=version, cert="device1", username="device1",
                       password="nope", client_id="mfa-wrong")
    assert wrong_pw.connect() == REFUSED_PASSWORD[version]
    # username_must_match_cert (default true): device2's password on device1's cert.
    mosquitto_passwd(pw, "device2", "d2-pass")
    mismatch = clients(moat, version=version, cert="device1", username="device2",
                       password="d2-pass", client_id="mfa-mismatch")
    assert mismatch.connect() in (REFUSED_PASSWORD[version], REFUSED_NOT_AUTHORIZED[version])
    broker.wait_log(r"as mfa-ok ")
    for cid in ("mfa-cert-only", "mfa-pass-only", "mfa-wrong", "mfa-mismatch"):
        assert_never_reached_broker(broker, cid)


def test_wrong_password_refuses_even_with_good_cert_when_any(moat_factory, broker, clients,
                                                             tmp_path):
    """§3: a factor that is presented and fails refuses, whatever auth.require says."""
    pw = mosquitto_passwd(str(tmp_path / "passwd"), "device1", "right")
    moat = moat_factory(password_overrides(pw, require="any",
                                           methods=["certificate", "password"]))
    c = clients(moat, version=V5, cert="device1", username="device1", password="nope",
                client_id="any-wrong")
    assert c.connect() == 0x86
    assert_never_reached_broker(broker, "any-wrong")


def _refused_cert(moat, clients, cert, version=V5):
    """A bad certificate is refused either at the TLS handshake (no CONNACK) or with
    CONNACK 0x87 / 5; it is never accepted."""
    c = clients(moat, version=version, cert=cert, client_id="bad-" + cert)
    rc = c.connect(timeout=3)
    assert rc in (None, REFUSED_NOT_AUTHORIZED[version]), "CONNACK %r for %s" % (rc, cert)


@pytest.mark.parametrize("cert", ["expired", "revoked", "noclientauth"])
def test_bad_certificates_refused(moat_factory, broker, clients, certs, cert):
    moat = moat_factory(tls={"crl": certs.path("ca.crl")})
    _refused_cert(moat, clients, cert)
    assert broker.connection_count() == 0
    # device1 still works with the CRL loaded.
    connected(clients, moat, cert="device1")


def test_intermediate_chain_accepted(moat_factory, broker, clients, certs):
    moat = moat_factory(tls={"crl": certs.path("ca-bundle.crl")})
    connected(clients, moat, cert="device3", client_id="chain-ok")
    line = broker.wait_log(r"as chain-ok .*").group(0)
    assert "u'device3'" in line


@pytest.mark.parametrize("source,identity", [
    ("cert_cn", "device1"),
    ("cert_san_dns", "device1.devices.example"),
    ("cert_san_uri", "spiffe://moat/device1"),
    ("cert_san_email", "device1@example.com"),
])
def test_identity_from(moat_factory, broker, clients, source, identity):
    moat = moat_factory({"auth": {"identity_from": source}})
    connected(clients, moat, cert="device1", client_id="idf-" + source)
    line = broker.wait_log(r"as idf-%s .*" % source).group(0)
    assert "u'%s'" % identity in line, line
    if source != "cert_cn":
        # device2 has no SAN: no identity of that kind.
        c = clients(moat, version=V5, cert="device2", client_id="idf-nosan")
        assert c.connect() == 0x87
        assert_never_reached_broker(broker, "idf-nosan")


@pytest.mark.parametrize("rule,good,bad", [
    ("identity", "device1", "device1-x"),
    ("identity_prefix", "device1-sensor", "sensor-device1"),
    ("identity_prefix", "device1", "device10"),  # a separator must follow the identity
])
@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_client_id_rule(moat_factory, broker, clients, rule, good, bad, version):
    moat = moat_factory({"auth": {"client_id": rule}})
    connected(clients, moat, version=version, client_id=good)
    c = clients(moat, version=version, client_id=bad)
    assert c.connect() == REFUSED_NOT_AUTHORIZED[version]
    broker.wait_log(r"as %s " % good)
    assert_never_reached_broker(broker, bad)


def test_anonymous(moat_factory, broker, clients):
    moat = moat_factory({"auth": {"anonymous": True}}, tls={"require_client_cert": False})
    a = connected(clients, moat, cert=None, client_id="anon-1")
    assert a.subscribe("anon/t", qos=1) == [1]
    a.publish("anon/t", b"hi", qos=1)
    m = a.get(10)
    assert m is not None and m.payload == b"hi"
    # The broker sees either the identity "anonymous" or no username at all.
    line = broker.wait_log(r"as anon-1 .*").group(0)
    assert "u'" not in line or "u'anonymous'" in line, line


def test_no_anonymous_without_factor(moat_factory, broker, clients):
    moat = moat_factory(tls={"require_client_cert": False})
    c = clients(moat, version=V5, cert=None, client_id="nofactor")
    assert c.connect() in (0x86, 0x87)
    assert broker.connection_count() == 0
