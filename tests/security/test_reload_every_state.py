"""A reload holds every connection to the new CRL and policy, whatever state it is in (#17.1,
#17.5): a socket that finished its TLS handshake before a revocation does not get in later; a
password check that runs across a reload does not keep the rights the reload took away; a will
the reload revoked is discarded, not published."""

import base64
import hashlib
import os
import shutil
import signal
import socket
import ssl
import time

import moat_harness as h
import mqtt_wire as w
import sec_util as u
from moat_harness import V5


def _reloads(moat, result="ok"):
    return moat.metric("moat_config_reloads_total", result=result)


def _reload(moat, cfg=None):
    before = _reloads(moat)
    if cfg is not None:
        moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: _reloads(moat) > before, 15, message="reload ok counted")


def _handshakes_ok(moat):
    return moat.metric("moat_tls_handshakes_total", result="ok")


def _connect_outcome(c, client_id, **kw):
    """CONNACK code, or None when the gateway closed the connection instead."""
    try:
        return c.connect(client_id, **kw)
    except (EOFError, ConnectionError, ssl.SSLError, socket.timeout, w.WireError, OSError):
        return None


def test_socket_opened_before_crl_reload_cannot_connect(moat_factory, certs, broker, tmp_path):
    crl = str(tmp_path / "crl.pem")
    shutil.copyfile(certs.path("ca-empty.crl"), crl)
    moat = moat_factory(tls={"crl": crl})
    before = _handshakes_ok(moat)
    # The device completes TLS with its (not yet revoked) certificate and sends nothing.
    waiting = u.raw_tls(moat, cert="revoked")
    h.wait_until(lambda: _handshakes_ok(moat) > before, 10, message="handshake counted")
    live = moat.wire(cert="revoked", version=V5)
    assert live.connect(u.unique("revoked-live")) == 0

    shutil.copyfile(certs.path("ca.crl"), tmp_path / "crl.staged")
    os.replace(str(tmp_path / "crl.staged"), crl)
    _reload(moat)
    assert live.wait_closed(timeout=10) == 0x98

    # The socket opened before the reload now sends CONNECT: refused or closed, never accepted.
    cid = u.unique("revoked-waiting")
    c = w.WireClient.__new__(w.WireClient)
    c.version, c.timeout, c.sock, c.buf = 4, 10.0, waiting, bytearray()
    code = _connect_outcome(c, cid)
    assert code != 0, "revoked certificate accepted on a socket opened before the reload"
    c.close()
    assert ("as %s " % cid) not in broker.log()
    u.assert_still_serves(moat, broker)


def _slow_hash(password, iterations):
    salt = os.urandom(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return "$7$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(),
                            base64.b64encode(dk).decode())


def _password_policy(subscribe):
    return {"default_roles": [], "roles": {"reader": {"publish": ["public/#"],
                                                      "subscribe": subscribe}},
            "users": {"slow-user": ["reader"]}}


def test_password_check_across_reload_gets_the_new_rights(moat_factory, broker, tmp_path):
    pw = str(tmp_path / "passwd")
    # A slow hash: the password check is still running when the reload lands.
    with open(pw, "w") as f:
        f.write("slow-user:%s\n" % _slow_hash("s3cret", 4_000_000))
    moat = moat_factory({"auth": {"methods": ["password"], "password_file": pw},
                         "policy": _password_policy(["public/#", "secret/#"]),
                         "limits": {"handshake_timeout": "60s"}},
                        tls={"require_client_cert": False})
    c = moat.wire(cert=None, timeout=120.0)
    cid = u.unique("slow-pw")
    c.send(w.connect_packet(cid, username="slow-user", password="s3cret"))
    time.sleep(0.3)  # ordering only: CONNECT reaches the gateway before the reload
    _reload(moat, dict(moat.config, policy=_password_policy(["public/#"])))
    ack = c.read_packet(timeout=120)
    assert ack.type == w.CONNACK and ack.body[1] == 0
    granted = c.subscribe([("secret/#", 1)])
    assert granted == [0x80], "SUBSCRIBE to a filter the reload revoked was granted: %r" % granted
    assert c.subscribe([("public/#", 1)], packet_id=2) == [1]
    c.close()


def _will_policy(device_publish):
    return {"default_roles": ["device"],
            "roles": {"device": {"publish": device_publish, "subscribe": ["wills/#", "mark/#"]}}}


def test_will_revoked_by_reload_is_not_published(moat_factory, broker):
    moat = moat_factory({"policy": _will_policy(["wills/%u", "mark/#"])})
    sub = u.connected_wire(moat, 4, u.unique("will-sub"), cert="device2")
    assert sub.subscribe([("wills/#", 0), ("mark/#", 0)]) == [0, 0]
    dev = moat.wire(cert="device1", version=V5)
    cid = u.unique("will-dev")
    assert dev.connect(cid, will={"topic": "wills/device1", "payload": b"gone"}) == 0
    broker.wait_log(r"New client connected .* as %s" % cid)

    _reload(moat, dict(moat.config, policy=_will_policy(["mark/#"])))
    # The device drops abruptly (or was already closed by the gateway: v5 0x87).
    try:
        code = dev.wait_closed(timeout=5)
    except w.WireError:
        code = "open"
    dev.abort()
    broker.wait_log(r"Client %s (disconnected|closed its connection)" % cid)
    # Anything the broker published for the will reaches the subscriber before this marker.
    sub.send(w.publish_packet("mark/done", b"m"))
    seen = []
    while True:
        p = sub.read_packet(timeout=10)
        if p.type == w.PUBLISH:
            topic, payload = w.decode_publish(p, 4)[:2]
            seen.append(topic)
            if topic == "mark/done":
                break
    assert "wills/device1" not in seen, "the broker published the revoked will: %r" % seen
    assert code == 0x87, "session with a revoked will kept open (%r)" % (code,)
    moat.wait_audit(lambda e: e.get("event") == "authz_denied" and e.get("action") == "will"
                    and e.get("client_id") == cid, message="audit authz_denied will")
    sub.close()


def test_password_changed_during_check_is_checked_again(moat_factory, broker, tmp_path):
    pw = str(tmp_path / "passwd")
    with open(pw, "w") as f:
        f.write("slow-user:%s\n" % _slow_hash("old-secret", 4_000_000))
    moat = moat_factory({"auth": {"methods": ["password"], "password_file": pw},
                         "policy": _password_policy(["public/#"]),
                         "limits": {"handshake_timeout": "60s"}},
                        tls={"require_client_cert": False})
    c = moat.wire(cert=None, timeout=120.0)
    cid = u.unique("changed-pw")
    c.send(w.connect_packet(cid, username="slow-user", password="old-secret"))
    time.sleep(0.3)  # ordering only: CONNECT reaches the gateway before the reload
    with open(pw + ".new", "w") as f:
        f.write("slow-user:%s\n" % _slow_hash("new-secret", 1000))
    os.replace(pw + ".new", pw)
    _reload(moat)
    ack = c.read_packet(timeout=120)
    assert ack.type == w.CONNACK
    assert ack.body[1] == 0x04, "the password the reload replaced was accepted (%#x)" % ack.body[1]
    c.close()
    assert ("as %s " % cid) not in broker.log()
