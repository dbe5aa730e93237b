"""Observability: the Prometheus exposition (CONTRACT §4), /healthz, the JSON audit log
(CONTRACT §5) and anomaly detection."""

import os
import re
import socket
import subprocess

import moat_harness as h
import mqtt_wire as w
from moat_harness import V311, V5, connected

# CONTRACT §4: family -> labels every sample must carry.
FAMILIES = {
    "moat_connections_active": {"listener"},
    "moat_connections_total": {"listener", "result"},
    "moat_tls_handshakes_total": {"listener", "result"},
    "moat_auth_total": {"method", "result"},
    "moat_authz_denied_total": {"action"},
    "moat_packets_total": {"direction", "type"},
    "moat_bytes_total": {"direction"},
    "moat_rate_limited_total": {"limit"},
    "moat_protocol_errors_total": {"reason"},
    "moat_bans_active": set(),
    "moat_anomalies_total": {"kind"},
    "moat_config_reloads_total": {"result"},
    "moat_certificate_expiry_seconds": {"listener"},
}

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUIRED_FIELDS = ("ts", "event", "listener", "remote", "client_id", "identity", "protocol")


def _refused(clients, moat, **kw):
    c = clients(moat, **kw)
    return c.connect(timeout=5)


def _deny_subscribe_policy():
    return {"policy": {"default_roles": ["device"],
                       "roles": {"device": {"publish": ["devices/%u/telemetry/#"],
                                            "subscribe": ["devices/%u/commands/#"]}}}}


def _passwd(tmp_path, user, password):
    path = str(tmp_path / "passwd")
    args = ["mosquitto_passwd", "-b", path, user, password]
    if not os.path.exists(path):
        args.insert(1, "-c")
    subprocess.run(args, check=True, capture_output=True, timeout=10)
    return path


def test_metrics_exposition_has_every_contract_family(moat_factory, clients, wires):
    # Label-carrying families appear once they have a sample: produce one event of each kind.
    over = dict(_deny_subscribe_policy(), anomaly={"topic_scan_distinct": 1})
    over["limits"] = {"max_subscriptions": 1}
    moat = moat_factory(over)
    c = connected(clients, moat, client_id="expo")
    assert c.subscribe("devices/other/#") == [0x80]                   # authz denied, anomaly
    c.publish("devices/device1/telemetry/t", b"x", qos=1)
    assert c.subscribe([("devices/device1/commands/a", 0),
                        ("devices/device1/commands/b", 0)])[1] == 0x80  # max_subscriptions
    assert _refused(clients, moat, cert="expired") != 0               # auth failure
    bad = wires(moat, cert="device2")
    assert bad.connect("expo-bad") == 0
    bad.send(w.publish_packet("wild/+", b"x"))                        # protocol error
    bad.wait_closed(10)
    h.wait_until(lambda: moat.metric("moat_protocol_errors_total") >= 1, 5,
                 message="moat_protocol_errors_total")

    status, text = moat.http_get("/metrics")
    assert status == 200
    # Prometheus' own linter judges the live page (names, types, HELP, units).
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, "promtool check metrics:\n" + lint.stdout + lint.stderr
    samples = h.parse_metrics(text)
    for family, labels in FAMILIES.items():
        assert re.search(r"^# TYPE %s " % family, text, re.M) or any(
            n == family for n, _ in samples), "family %s missing from /metrics" % family
        for (n, lbls), _ in samples.items():
            if n == family:
                have = {k for k, _ in lbls}
                assert labels <= have, "%s has labels %s, want %s" % (n, have, labels)
    # Samples the events above must have produced, with the contract's label values (per-worker
    # counters may be flushed to the registry a little later: bounded waits).
    for name, labels, what in (
            ("moat_connections_active", {"listener": "mqtts"}, "connections_active"),
            ("moat_connections_total", {"listener": "mqtts", "result": "accepted"}, "accepted"),
            ("moat_tls_handshakes_total", {"listener": "mqtts", "result": "ok"}, "handshakes"),
            ("moat_auth_total", {"method": "certificate", "result": "failure"}, "auth failure"),
            ("moat_authz_denied_total", {"action": "subscribe"}, "authz denied"),
            ("moat_packets_total", {"direction": "client_to_broker", "type": "PUBLISH"},
             "packets"),
            ("moat_bytes_total", {"direction": "broker_to_client"}, "bytes"),
            ("moat_rate_limited_total", {"limit": "max_subscriptions"}, "rate limited"),
            ("moat_anomalies_total", {"kind": "topic_scan"}, "anomaly"),
            ("moat_certificate_expiry_seconds", {"listener": "mqtts"}, "cert expiry")):
        h.wait_until(lambda: moat.metric(name, **labels) > 0, 5,
                     message="%s %s > 0 (%s)" % (name, labels, what))


def test_counters_increase_after_events(moat_factory, clients):
    moat = moat_factory(_deny_subscribe_policy())
    fail0 = moat.metric("moat_auth_total", method="certificate", result="failure")
    ok0 = moat.metric("moat_auth_total", method="certificate", result="success")
    deny0 = moat.metric("moat_authz_denied_total", action="subscribe")

    assert _refused(clients, moat, cert="expired") != 0
    h.wait_until(lambda: moat.metric("moat_auth_total", method="certificate",
                                     result="failure") > fail0, 5,
                 message="moat_auth_total{certificate,failure}")

    c = connected(clients, moat, client_id="counters")
    assert moat.metric("moat_auth_total", method="certificate", result="success") > ok0
    assert c.subscribe("devices/device2/commands/#") == [0x80]
    h.wait_until(lambda: moat.metric("moat_authz_denied_total", action="subscribe") > deny0, 5,
                 message="moat_authz_denied_total{subscribe}")


def test_healthz(moat):
    status, _ = moat.http_get("/healthz")
    assert status == 200


def test_audit_log_lines_are_json_with_required_fields(moat_factory, clients, wires):
    moat = moat_factory(_deny_subscribe_policy())
    c = connected(clients, moat, version=V5, client_id="audit-json")
    assert c.subscribe("devices/device2/commands/#") == [0x87]
    ev = moat.wait_audit(lambda e: e.get("event") == "authz_denied", message="authz_denied")[0]
    assert ev["client_id"] == "audit-json"
    assert ev["identity"] == "device1"
    assert ev["protocol"] == "5.0"
    assert ev["listener"] == "mqtts"
    assert re.match(r"^127\.0\.0\.1:\d+$", ev["remote"])
    assert ev.get("action") == "subscribe"
    assert ev.get("topic") == "devices/device2/commands/#"
    v3 = wires(moat, cert="device2", version=V311)
    assert v3.connect("audit-v311") == 0
    moat.wait_audit(lambda e: e.get("event") == "connect" and e.get("client_id") == "audit-v311"
                    and e.get("protocol") == "3.1.1", message="connect event of a v3.1.1 client")
    for e in moat.audit_events():
        assert TS.match(e.get("ts", "")), "bad ts in %r" % e
        if e["event"] in ("connect", "authz_denied"):
            missing = [f for f in REQUIRED_FIELDS if f not in e]
            assert not missing, "%s lacks %s" % (e, missing)


def test_password_never_logged(moat_factory, clients, tmp_path):
    secret = "S3cr3t-pa55-%d" % os.getpid()
    wrong = "Wr0ng-pa55-%d" % os.getpid()
    pw = _passwd(tmp_path, "device1", secret)
    moat = moat_factory({"auth": {"methods": ["certificate", "password"],
                                  "password_file": pw}})
    connected(clients, moat, client_id="pw-ok", username="device1", password=secret)
    assert _refused(clients, moat, client_id="pw-bad", username="device1",
                    password=wrong) == 4
    moat.wait_audit(lambda e: e.get("event") == "auth_failure", message="auth_failure")
    assert moat.metric("moat_auth_total", method="password", result="success") >= 1
    assert moat.metric("moat_auth_total", method="password", result="failure") >= 1
    with open(moat.audit_path, errors="replace") as f:
        audit = f.read()
    for text in (audit, moat.stderr()):
        assert secret not in text
        assert wrong not in text


def test_anomaly_topic_scan(moat_factory, wires):
    moat = moat_factory(dict(_deny_subscribe_policy(),
                             anomaly={"topic_scan_distinct": 5, "window": "60s"}))
    c = wires(moat, cert="device1", version=V5)
    assert c.connect("scanner") == 0
    for i in range(6):
        assert c.publish("secret/%d" % i, b"probe", qos=1, packet_id=i + 1) == 0x87
    ev = moat.wait_audit(lambda e: e.get("event") == "anomaly"
                         and "topic_scan" in str(e.get("reason", "")), message="topic_scan")
    assert ev
    h.wait_until(lambda: moat.metric("moat_anomalies_total", kind="topic_scan") >= 1, 5,
                 message="moat_anomalies_total{topic_scan}")


def test_anomaly_auth_failures(moat_factory, clients, tmp_path):
    pw = _passwd(tmp_path, "device1", "right-one")
    moat = moat_factory({"auth": {"methods": ["certificate", "password"],
                                  "password_file": pw},
                         "anomaly": {"auth_failures": 3, "window": "60s"}})
    for i in range(3):
        assert _refused(clients, moat, version=V5, client_id="af-%d" % i, username="device1",
                        password="wrong-%d" % i) == 0x86
    moat.wait_audit(lambda e: e.get("event") == "anomaly"
                    and "auth_failures" in str(e.get("reason", "")), message="auth_failures")
    h.wait_until(lambda: moat.metric("moat_anomalies_total", kind="auth_failures") >= 1, 5,
                 message="moat_anomalies_total{auth_failures}")


def test_anomaly_connection_storm(moat_factory):
    moat = moat_factory({"anomaly": {"connection_storm": 10, "window": "60s"}})
    socks = []
    try:
        for _ in range(12):
            socks.append(socket.create_connection((h.HOST, moat.port), timeout=5))
        moat.wait_audit(lambda e: e.get("event") == "anomaly"
                        and "connection_storm" in str(e.get("reason", "")),
                        message="connection_storm")
        h.wait_until(lambda: moat.metric("moat_anomalies_total", kind="connection_storm") >= 1,
                     5, message="moat_anomalies_total{connection_storm}")
    finally:
        for s in socks:
            s.close()


def test_audit_rate_limit_summarises(moat_factory, wires):
    over = _deny_subscribe_policy()
    over["audit"] = {"max_events_per_second": 2}
    moat = moat_factory(over)
    c = wires(moat, cert="device1", version=V5)
    assert c.connect("noisy") == 0
    for i in range(40):
        assert c.publish("denied/%d" % i, b"x", qos=1, packet_id=i + 1) == 0x87
    ev = moat.wait_audit(lambda e: e.get("event") == "audit_suppressed", 15,
                         message="audit_suppressed summary")
    total = sum(e.get("count", 0) for e in moat.audit_events("audit_suppressed"))
    denied = len(moat.audit_events("authz_denied"))
    assert ev[0].get("count", 0) >= 1
    assert denied < 40
    # Every denial is either written or counted in a summary.
    h.wait_until(lambda: len(moat.audit_events("authz_denied")) + sum(
        e.get("count", 0) for e in moat.audit_events("audit_suppressed")) >= 40, 15,
        message="written + summarised >= 40 (written %d, summarised %d)" % (denied, total))
