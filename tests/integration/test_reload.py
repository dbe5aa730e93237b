"""Hot reload: SIGHUP and the file watch (config, certificate, CRL) without dropping healthy
connections; a reload that fails validation keeps the old configuration."""

import os
import shutil
import signal
import socket
import ssl
import subprocess


import moat_harness as h
import mqtt_wire as w
from moat_harness import V5, connected


def _copy(certs, tmp_path, name):
    dst = str(tmp_path / name)
    shutil.copyfile(certs.path(name), dst)
    return dst


def _new_server_cert(certs, tmp_path, serial):
    """A second server certificate for the same key (so a watcher that reloads between two
    writes never sees a cert/key mismatch), signed by the test CA, with its own serial."""
    csr, ext, out = (str(tmp_path / n) for n in ("new.csr", "new.ext", "server-new.pem"))
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-new", "-key", certs.path("server.key"), "-subj",
                    "/CN=localhost", "-out", csr], check=True, capture_output=True, timeout=30)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", certs.ca, "-CAkey",
                    certs.path("ca.key"), "-set_serial", str(serial), "-days", "30",
                    "-extfile", ext, "-out", out], check=True, capture_output=True, timeout=30)
    return out


def _peer_cert(certs, port, cert="device1"):
    ctx = certs.context(cert)
    with socket.create_connection((h.HOST, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def _serial(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, check=True, timeout=10)
    return int(r.stdout.decode().strip().split("=", 1)[1], 16)


def _reloads(moat, result):
    return moat.metric("moat_config_reloads_total", result=result)


def _tls_refused(certs, port, cert):
    raw = socket.create_connection((h.HOST, port), timeout=5)
    try:
        s = certs.context(cert).wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        raw.close()
        return True
    try:
        s.sendall(w.connect_packet("after-revoke"))
        s.settimeout(5)
        return s.recv(16) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def test_server_certificate_rotation_keeps_connections(moat_factory, certs, clients, tmp_path):
    cert_path = _copy(certs, tmp_path, "server.pem")
    moat = moat_factory(tls={"cert": cert_path})
    old_der = _peer_cert(certs, moat.port)
    old = connected(clients, moat, client_id="rot-old")
    assert old.subscribe("rot/#", qos=1) == [1]
    ok_before = _reloads(moat, "ok")

    new_path = _new_server_cert(certs, tmp_path, 0x5EED1234)
    shutil.copyfile(new_path, tmp_path / "server-staged.pem")
    os.replace(str(tmp_path / "server-staged.pem"), cert_path)
    moat.proc.send_signal(signal.SIGHUP)

    h.wait_until(lambda: _reloads(moat, "ok") > ok_before, 10, message="reload ok counted")
    moat.wait_audit(lambda e: e.get("event") == "reload" and e.get("reason") == "ok",
                    message="audit reload ok")
    new_der = h.wait_until(lambda: (lambda d: d if d != old_der else None)(
        _peer_cert(certs, moat.port)), 10, message="new certificate served")
    assert _serial(new_der) == 0x5EED1234
    assert _serial(old_der) != 0x5EED1234

    # The connection made before the rotation is still alive and forwards both ways.
    pub = connected(clients, moat, cert="device2", client_id="rot-new")
    pub.publish("rot/x", b"after-rotation", qos=1)
    m = old.get(10)
    assert m is not None and m.payload == b"after-rotation"
    assert not old.disconnected.is_set()


def test_revoked_device_disconnected_by_crl_file_watch(moat_factory, certs, wires, broker,
                                                     tmp_path):
    crl = _copy(certs, tmp_path, "ca-empty.crl")
    moat = moat_factory(tls={"crl": crl})
    c = wires(moat, cert="revoked", version=V5)
    assert c.connect("revoked-live") == 0
    broker.wait_log(r"New client connected .* as revoked-live")
    ok_before = _reloads(moat, "ok")

    # No SIGHUP: the file watch picks up the new CRL.
    shutil.copyfile(certs.path("ca.crl"), tmp_path / "crl.staged")
    os.replace(str(tmp_path / "crl.staged"), crl)

    assert c.wait_closed(timeout=15) == 0x98
    assert _reloads(moat, "ok") > ok_before
    assert _tls_refused(certs, moat.port, "revoked")
    # Other devices are unaffected.
    ok = wires(moat, cert="device1")
    assert ok.connect("not-revoked") == 0


def test_cached_chain_of_revoked_device_refused_after_crl_reload(moat_factory, certs, wires,
                                                                tmp_path):
    """The verified-chain cache (tls.verify_cache, on by default) must not outlive the CRL it
    was verified under: the device's chain is cached by several full handshakes (no session
    ticket offered), then a reload brings a CRL that revokes it."""
    crl = _copy(certs, tmp_path, "ca-empty.crl")
    moat = moat_factory(tls={"crl": crl})
    hits0 = moat.metric("moat_tls_verify_cache_total", result="hit")
    for i in range(3):  # first: verified and cached; then: cache hits
        c = wires(moat, cert="revoked", version=V5)
        assert c.connect("revoked-cached-%d" % i) == 0
        c.close()
    assert moat.metric("moat_tls_verify_cache_total", result="hit") >= hits0 + 2
    ok_before = _reloads(moat, "ok")

    shutil.copyfile(certs.path("ca.crl"), tmp_path / "crl.staged")
    os.replace(str(tmp_path / "crl.staged"), crl)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: _reloads(moat, "ok") > ok_before, 10, message="reload ok counted")

    hits1 = moat.metric("moat_tls_verify_cache_total", result="hit")
    for _ in range(2):  # refused every time: a refusal is never cached, the old entry unseen
        assert _tls_refused(certs, moat.port, "revoked")
    assert moat.metric("moat_tls_verify_cache_total", result="hit") == hits1
    ok = wires(moat, cert="device1")
    assert ok.connect("cached-not-revoked") == 0


def test_verify_cache_off_still_verifies(moat_factory, certs, wires):
    moat = moat_factory(tls={"verify_cache": False})
    for i in range(2):
        c = wires(moat, cert="device1", version=V5)
        assert c.connect("nocache-%d" % i) == 0
        c.close()
    assert moat.metric("moat_tls_verify_cache_total", result="hit") == 0
    assert moat.metric("moat_tls_verify_cache_total", result="miss") == 0
    assert _tls_refused(certs, moat.port, "rogue")


def _role_policy(device_subscribe):
    return {
        "default_roles": ["device"],
        "roles": {
            "device": {"publish": ["devices/%u/telemetry/#"],
                       "subscribe": device_subscribe},
            "operator": {"publish": ["devices/+/commands/#"], "subscribe": ["devices/#"]},
        },
        "users": {"ops-console": ["operator"]},
    }


def test_narrowed_role_unsubscribes_live_session(moat_factory, broker, clients):
    moat = moat_factory({"policy": _role_policy(["devices/%u/commands/#"])})
    dev = connected(clients, moat, cert="device1", client_id="narrow-dev")
    assert dev.subscribe("devices/device1/commands/#", qos=1) == [1]
    ops = connected(clients, moat, cert="operator1", client_id="narrow-ops")
    ops.publish("devices/device1/commands/a", b"before", qos=1)
    m = dev.get(10)
    assert m is not None and m.payload == b"before"

    ok_before = _reloads(moat, "ok")
    cfg = dict(moat.config, policy=_role_policy(["devices/%u/other/#"]))
    moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: _reloads(moat, "ok") > ok_before, 10, message="reload ok counted")
    broker.wait_log(r"Received UNSUBSCRIBE from narrow-dev")

    ops.publish("devices/device1/commands/b", b"after", qos=1)
    dev.expect_none(1.0)


def test_broken_reload_keeps_old_config(moat_factory, certs, broker, clients):
    moat = moat_factory()
    sub = connected(clients, moat, client_id="broken-sub")
    assert sub.subscribe("keep/#", qos=1) == [1]
    failed_before = _reloads(moat, "failed")

    cfg = dict(moat.config)
    cfg["listeners"] = [dict(moat.config["listeners"][0])]
    cfg["listeners"][0]["tls"] = dict(cfg["listeners"][0]["tls"],
                                      cert=certs.path("does-not-exist.pem"))
    cfg["no_such_key"] = True
    moat.write_config(cfg)
    moat.proc.send_signal(signal.SIGHUP)

    h.wait_until(lambda: _reloads(moat, "failed") > failed_before, 10,
                 message="failed reload counted")
    ev = moat.wait_audit(lambda e: e.get("event") == "reload"
                         and str(e.get("reason", "")).startswith("failed"),
                         message="audit reload failed")
    assert ev
    assert moat.proc.poll() is None
    pub = connected(clients, moat, cert="device2", client_id="broken-new")
    pub.publish("keep/x", b"still-works", qos=1)
    m = sub.get(10)
    assert m is not None and m.payload == b"still-works"
    assert not sub.disconnected.is_set()


def test_reload_starts_the_health_check(moat_factory, broker):
    """backend.health_check_interval follows a reload: switched on (and to a host name
    backend), the probe starts and /healthz reports the broker."""
    moat = moat_factory({"backend": {"health_check_interval": "0s"}})
    broker.stop()
    assert moat.http_get("/healthz")[0] == 200  # nothing probes: no news is good news
    ok_before = _reloads(moat, "ok")
    moat.write_config(h.deep_merge(moat.config, {"backend": {
        "address": "localhost:%d" % broker.port, "health_check_interval": "100ms"}}))
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: _reloads(moat, "ok") > ok_before, 10, message="reload ok counted")
    h.wait_until(lambda: moat.http_get("/healthz")[0] == 503, 10,
                 message="the new health check to see the broker down")


def _worker_policies(moat):
    """{thread name: scheduling policy} of the gateway's worker threads (0 = SCHED_OTHER,
    3 = SCHED_BATCH), from /proc/PID/task/TID/stat field 41."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % moat.pid):
        with open("/proc/%d/task/%s/stat" % (moat.pid, tid)) as f:
            stat = f.read()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name.startswith("moat-worker-"):
            out[name] = int(stat[stat.rindex(")") + 2:].split()[38])
    return out


def test_tuning_scheduler_applies_to_workers_and_follows_reload(moat_factory, clients):
    moat = moat_factory({"tuning": {"scheduler": "batch"}})
    h.wait_until(lambda: _worker_policies(moat), 10, message="named worker threads")
    assert set(_worker_policies(moat).values()) == {3}, _worker_policies(moat)
    sub = connected(clients, moat, client_id="sched-sub")
    assert sub.subscribe("sched/#", qos=1) == [1]

    ok_before = _reloads(moat, "ok")
    moat.write_config(h.deep_merge(moat.config, {"tuning": {"scheduler": "normal"}}))
    moat.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: _reloads(moat, "ok") > ok_before, 10, message="reload ok counted")
    h.wait_until(lambda: set(_worker_policies(moat).values()) == {0}, 10,
                 message="workers back on SCHED_OTHER after the reload")
    pub = connected(clients, moat, cert="device2", client_id="sched-pub")
    pub.publish("sched/x", b"after", qos=1)
    m = sub.get(10)
    assert m is not None and m.payload == b"after"
