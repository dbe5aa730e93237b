"""Revocation covers the whole certificate chain (issue #18.1).

A PKI is made with openssl at test time: root -> intermediate -> device. The root's CRL revokes
the intermediate; `crl:` holds the root's and the intermediate's CRLs; the device sends its
certificate and the intermediate. `openssl verify -crl_check_all` says "certificate revoked":
so must the gateway, at the handshake, at CONNECT and for live sessions after a reload. And a
`crl:` file that lacks the CRL of a CA in `client_ca` is reported by `moat check` / `moat audit`
(with whole-chain checking, every device under that CA would be refused)."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

import moat_harness as h
import mqtt_wire as w
from sec_util import unique

CA_CONF = """
[ca]
default_ca = ca_default
[ca_default]
database = index.txt
default_md = sha256
default_crl_days = 30
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_device]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def _ssl(d, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, "openssl %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr)
    return r.stdout


def _crl(d, ca, revoked=None, out=None):
    """A CRL of CA `ca` (files ca.pem / ca.key in d) listing `revoked` (a cert file) or none."""
    with open(os.path.join(d, "index.txt"), "w"):
        pass
    if revoked:
        _ssl(d, "ca", "-config", "ca.cnf", "-keyfile", ca + ".key", "-cert", ca + ".pem",
             "-revoke", revoked)
    _ssl(d, "ca", "-config", "ca.cnf", "-keyfile", ca + ".key", "-cert", ca + ".pem", "-gencrl",
         "-out", out)
    return os.path.join(d, out)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """root.pem, int.pem (signed by root), device.pem (CN=chaindev, signed by int),
    device-chain.pem (device + int), and the CRLs: root-revokes-int.crl, root-empty.crl,
    int-empty.crl."""
    d = str(tmp_path_factory.mktemp("chain"))
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CONF)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _ssl(d, "req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "400",
         "-subj", "/CN=Chain Test Root", "-config", "ca.cnf", "-extensions", "v3_ca")
    for name, cn, issuer, ext in (("int", "Chain Test Intermediate", "root", "v3_ca"),
                                  ("device", "chaindev", "int", "v3_device")):
        _ssl(d, "req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
             "-config", "ca.cnf")
        _ssl(d, "x509", "-req", "-in", name + ".csr", "-CA", issuer + ".pem", "-CAkey",
             issuer + ".key", "-CAcreateserial", "-out", name + ".pem", "-days", "400",
             "-extfile", "ca.cnf", "-extensions", ext)
    with open(os.path.join(d, "device-chain.pem"), "w") as f:
        f.write(open(os.path.join(d, "device.pem")).read() + open(os.path.join(d, "int.pem")).read())
    _crl(d, "root", revoked="int.pem", out="root-revokes-int.crl")
    _crl(d, "root", out="root-empty.crl")
    _crl(d, "int", out="int-empty.crl")
    files = {n: os.path.join(d, n) for n in os.listdir(d)}

    def bundle(name, *crls):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            for c in crls:
                f.write(open(files[c]).read())
        return path

    files["revoked-bundle"] = bundle("revoked-bundle.crl", "root-revokes-int.crl",
                                     "int-empty.crl")
    files["good-bundle"] = bundle("good-bundle.crl", "root-empty.crl", "int-empty.crl")
    files["dir"] = d
    return files


def _ctx(certs, chain):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca)  # the gateway's server certificate
    ctx.load_cert_chain(chain["device-chain.pem"], chain["device.key"])
    return ctx


def _connect(moat, ctx, version=4):
    """The CONNACK code, or None when the TLS handshake / connection was refused."""
    try:
        c = w.WireClient(h.HOST, moat.port, ctx, version, timeout=5)
    except (ssl.SSLError, OSError):
        return None, None
    try:
        return c.connect(unique("chain")), c
    except (ssl.SSLError, OSError, EOFError, w.WireError):
        c.close()
        return None, None


def _chain_moat(moat_factory, chain, crl):
    return moat_factory(tls={"client_ca": chain["root.pem"], "crl": crl})


def test_openssl_itself_says_revoked(chain):
    """The reference the gateway must agree with."""
    r = subprocess.run(["openssl", "verify", "-crl_check_all", "-CAfile", chain["root.pem"],
                        "-untrusted", chain["int.pem"], "-CRLfile", chain["revoked-bundle"],
                        chain["device.pem"]], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "certificate revoked" in r.stdout + r.stderr


def test_device_under_revoked_intermediate_refused_at_handshake(moat_factory, chain, certs,
                                                                broker):
    moat = _chain_moat(moat_factory, chain, chain["revoked-bundle"])
    failed = moat.metric("moat_auth_total", method="certificate", result="failure")
    code, c = _connect(moat, _ctx(certs, chain))
    if c:
        c.close()
    assert code is None, "device under a revoked intermediate got CONNACK %r" % code
    h.wait_until(lambda: moat.metric("moat_auth_total", method="certificate",
                                     result="failure") > failed, 5,
                 message="the refused certificate counted as a failed authentication")
    moat.wait_audit(lambda e: e.get("event") == "auth_failure" and
                    "revoked" in e.get("reason", ""), message="auth_failure 'revoked'")
    assert broker.connection_count() == 0


def test_same_chain_accepted_when_nothing_is_revoked(moat_factory, chain, certs, broker):
    """Control: the PKI itself is fine; only the revocation refuses it."""
    moat = _chain_moat(moat_factory, chain, chain["good-bundle"])
    code, c = _connect(moat, _ctx(certs, chain))
    try:
        assert code == 0
    finally:
        if c:
            c.close()


def test_live_session_under_intermediate_revoked_by_reload(moat_factory, chain, certs, broker,
                                                           tmp_path):
    crl = str(tmp_path / "live.crl")
    shutil.copyfile(chain["good-bundle"], crl)
    moat = _chain_moat(moat_factory, chain, crl)
    code, c = _connect(moat, _ctx(certs, chain), version=5)
    assert code == 0
    try:
        reloads = moat.metric("moat_config_reloads_total", result="ok")
        shutil.copyfile(chain["revoked-bundle"], str(tmp_path / "staged.crl"))
        os.replace(str(tmp_path / "staged.crl"), crl)
        os.kill(moat.pid, signal.SIGHUP)
        h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > reloads,
                     10, message="the reload")
        assert c.wait_closed(timeout=10) == 0x98, "session not ended with DISCONNECT 0x98"
        moat.wait_audit(lambda e: e.get("event") == "disconnect" and
                        "revoked" in e.get("reason", ""), message="disconnect 'revoked'")
    finally:
        c.close()
    # And a new connection is refused at the handshake.
    code, c2 = _connect(moat, _ctx(certs, chain))
    if c2:
        c2.close()
    assert code is None


def test_reload_between_handshake_and_connect_rechecks(moat_factory, chain, certs, broker,
                                                       tmp_path):
    """TLS done under the old CRL, CONNECT after a reload that revokes the intermediate: the
    CONNECT is refused (never forwarded)."""
    crl = str(tmp_path / "pending.crl")
    shutil.copyfile(chain["good-bundle"], crl)
    moat = _chain_moat(moat_factory, chain, crl)
    c = w.WireClient(h.HOST, moat.port, _ctx(certs, chain), 4, timeout=5)
    try:
        c.sock.do_handshake()
        reloads = moat.metric("moat_config_reloads_total", result="ok")
        shutil.copyfile(chain["revoked-bundle"], str(tmp_path / "staged.crl"))
        os.replace(str(tmp_path / "staged.crl"), crl)
        os.kill(moat.pid, signal.SIGHUP)
        h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > reloads,
                     10, message="the reload")
        cid = unique("pending")
        try:
            code = c.connect(cid)
        except (ssl.SSLError, OSError, EOFError, w.WireError):
            code = None
        assert code != 0, "CONNECT accepted after the reload revoked the intermediate"
    finally:
        c.close()
    assert broker.connection_count() == 0


def _write_config(tmp_path, certs, chain, crl):
    cfg = {
        "listeners": [{"name": "mqtts", "bind": "127.0.0.1:%d" % h.free_port(),
                       "tls": {"cert": certs.path("server.pem"), "key": certs.path("server.key"),
                               "client_ca": chain["root.pem"], "crl": crl}}],
        "backend": {"address": "127.0.0.1:1883"},
        "policy": {"default_roles": ["d"], "roles": {"d": {"publish": ["devices/%u/#"]}}},
    }
    path = str(tmp_path / "moat.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    return path


def test_check_and_audit_name_a_ca_without_crl(tmp_path, certs, chain):
    """client_ca holds the root; crl holds only the intermediate's CRL: with whole-chain
    checking every device would be refused, so `moat check` fails and `moat audit` says
    which CA lacks its CRL."""
    path = _write_config(tmp_path, certs, chain, chain["int-empty.crl"])
    r = subprocess.run([h.moat_bin(), "check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Chain Test Root" in r.stderr and "no CRL" in r.stderr, r.stderr
    assert r.stderr.startswith(path + ":"), r.stderr
    r = subprocess.run([h.moat_bin(), "audit", "-c", path, "--format", "json"],
                       capture_output=True, text=True, timeout=30)
    findings = json.loads(r.stdout)
    hits = [f for f in findings if f["id"] == "crl-missing-for-ca"]
    assert hits and "Chain Test Root" in json.dumps(hits), r.stdout
    assert r.returncode == 4
    # With both CRLs the same files pass.
    path = _write_config(tmp_path, certs, chain, chain["good-bundle"])
    r = subprocess.run([h.moat_bin(), "check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


def test_audit_reports_intermediate_in_client_ca(tmp_path, certs, chain):
    bundle = str(tmp_path / "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(chain["root.pem"]).read() + open(chain["int.pem"]).read())
    path = _write_config(tmp_path, certs, chain, chain["good-bundle"])
    cfg = json.load(open(path))
    cfg["listeners"][0]["tls"]["client_ca"] = bundle
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([h.moat_bin(), "audit", "-c", path, "--format", "json"],
                       capture_output=True, text=True, timeout=30)
    hits = [f for f in json.loads(r.stdout) if f["id"] == "client-ca-intermediate"]
    assert len(hits) == 1, r.stdout
    assert "Chain Test Intermediate" in json.dumps(hits) and hits[0]["severity"] == "low"


def test_resumed_session_under_intermediate_survives_reload(moat_factory, chain, certs,
                                                            broker):
    """A device that resumed its TLS session (ticket) sent no chain on that connection: the
    reload re-check must still find its intermediate, not disconnect it as 'unable to get
    local issuer certificate'. (Revocation is not weakened: a reload makes new ticket keys, so
    no resumption crosses a CRL change.)"""
    moat = _chain_moat(moat_factory, chain, chain["good-bundle"])
    ctx = _ctx(certs, chain)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    first = w.WireClient(h.HOST, moat.port, ctx, 5, timeout=5)
    assert first.connect(unique("full")) == 0
    session = first.sock.session  # the ticket arrived with the CONNACK
    first.close()
    raw = socket.create_connection((h.HOST, moat.port), timeout=5)
    c = w.WireClient.__new__(w.WireClient)
    c.version, c.timeout, c.buf = 5, 5, bytearray()
    c.sock = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    try:
        assert c.sock.session_reused, "the test needs a resumed session"
        assert c.connect(unique("resumed")) == 0
        reloads = moat.metric("moat_config_reloads_total", result="ok")
        os.kill(moat.pid, signal.SIGHUP)
        h.wait_until(lambda: moat.metric("moat_config_reloads_total", result="ok") > reloads,
                     10, message="the reload")
        # Still served: a QoS 1 publish is acknowledged after the reload.
        assert c.publish("devices/chaindev/t", b"x", qos=1) < 0x80
        assert not [e for e in moat.audit_events("disconnect") if
                    "no longer valid" in e.get("reason", "")]
    finally:
        c.close()
