"""Authorization (CONTRACT.md §2 policy, §3): publish / subscribe / will / delivery checks,
topic aliases, `moat explain`, audit events and metrics."""

import subprocess

import pytest

import moat_harness as h
import mqtt_wire as w
from moat_harness import V311, V5, connected

POLICY = {
    "policy": {
        "default_roles": ["device"],
        "roles": {
            "device": {
                "publish": ["devices/%u/telemetry/#"],
                "subscribe": ["devices/%u/commands/#"],
                "deny_subscribe": ["devices/%u/commands/secret/#"],
            },
            "operator": {
                "publish": ["devices/#"],
                "subscribe": ["devices/#"],
            },
        },
        "users": {"ops-console": ["operator"]},
        "on_publish_denied": "drop",
        "check_deliveries": True,
    }
}


@pytest.fixture
def acl_moat(moat_factory):
    return moat_factory(POLICY)


def operator(clients, moat, topic="devices/#"):
    op = connected(clients, moat, cert="operator1", client_id="ops")
    assert op.subscribe(topic, qos=1) == [1]
    return op


@pytest.mark.parametrize("qos", [1, 2])
def test_denied_publish_v5_reason_0x87(acl_moat, clients, wires, qos):
    op = operator(clients, acl_moat)
    dev = wires(acl_moat, cert="device1", version=5)
    assert dev.connect("dev1-v5") == 0
    assert dev.publish("devices/device2/telemetry/t", b"spoof", qos=qos, packet_id=7) == 0x87
    assert dev.publish("devices/device1/telemetry/t", b"mine", qos=qos, packet_id=8) == 0
    m = op.get(10)
    assert m is not None and (m.topic, m.payload) == ("devices/device1/telemetry/t", b"mine")
    op.expect_none(0.5)
    ev = acl_moat.wait_audit(lambda e: e.get("event") == "authz_denied"
                             and e.get("action") == "publish")[0]
    assert ev["topic"] == "devices/device2/telemetry/t"
    assert ev["identity"] == "device1"
    assert ev.get("rule"), ev
    assert acl_moat.metric("moat_authz_denied_total", action="publish") >= 1


def test_denied_publish_v311_success_ack(acl_moat, clients, wires):
    op = operator(clients, acl_moat)
    dev = wires(acl_moat, cert="device1", version=4)
    assert dev.connect("dev1-v3") == 0
    assert dev.publish("devices/device2/telemetry/t", b"spoof", qos=1, packet_id=3) == 0
    assert dev.publish("devices/device1/telemetry/t", b"mine", qos=1, packet_id=4) == 0
    m = op.get(10)
    assert m is not None and m.payload == b"mine"
    op.expect_none(0.5)


def test_denied_publish_qos0_counted(acl_moat, clients, wires):
    op = operator(clients, acl_moat)
    before = acl_moat.metric("moat_authz_denied_total", action="publish")
    dev = wires(acl_moat, cert="device1", version=5)
    assert dev.connect("dev1-q0") == 0
    dev.publish("devices/device2/telemetry/t", b"spoof", qos=0)
    dev.publish("devices/device1/telemetry/t", b"mine", qos=1)
    m = op.get(10)
    assert m is not None and m.payload == b"mine"
    op.expect_none(0.5)
    assert acl_moat.metric("moat_authz_denied_total", action="publish") == before + 1


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_on_publish_denied_disconnect(moat_factory, clients, wires, version):
    moat = moat_factory(h.deep_merge(POLICY, {"policy": {"on_publish_denied": "disconnect"}}))
    op = operator(clients, moat)
    dev = wires(moat, cert="device1", version=version)
    assert dev.connect("dev1-dc") == 0
    dev.send(w.publish_packet("devices/device2/telemetry/t", b"spoof", qos=1, version=version))
    reason = dev.wait_closed(5)
    assert reason == (0x87 if version == V5 else None)
    op.expect_none(0.5)


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_subscribe_mixed_filters(acl_moat, broker, clients, wires, version):
    dev = wires(acl_moat, cert="device1", version=version)
    assert dev.connect("dev1-sub") == 0
    denied = 0x87 if version == V5 else 0x80
    codes = dev.subscribe([
        ("devices/device1/commands/a/#", 1),
        ("devices/device2/commands/#", 1),
        ("devices/device1/commands/a", 0),
        ("#", 0),
    ], packet_id=42)
    assert codes == [1, denied, 0, denied]
    op = connected(clients, acl_moat, cert="operator1")
    op.publish("devices/device2/commands/x", b"not yours", qos=1)
    op.publish("devices/device1/commands/a/b", b"yours", qos=1)
    got = dev.publishes(1.0)
    assert got == [("devices/device1/commands/a/b", b"yours")]
    assert acl_moat.metric("moat_authz_denied_total", action="subscribe") >= 2


@pytest.mark.parametrize("version", [V5, V311], ids=["v5", "v311"])
def test_subscribe_only_denied_answered_by_gateway(acl_moat, broker, wires, version):
    dev = wires(acl_moat, cert="device1", version=version)
    assert dev.connect("dev1-denied-only") == 0
    denied = 0x87 if version == V5 else 0x80
    assert dev.subscribe([("devices/device2/commands/#", 1), ("$SYS/#", 0)],
                         packet_id=9) == [denied, denied]
    # The connection still works, and the broker never saw that SUBSCRIBE.
    assert dev.subscribe([("devices/device1/commands/a/#", 0)], packet_id=10) == [0]
    assert broker.log().count("Received SUBSCRIBE from dev1-denied-only") == 1


@pytest.mark.parametrize("version,code", [(V5, 0x87), (V311, 5)], ids=["v5", "v311"])
def test_will_topic_not_allowed(acl_moat, broker, wires, version, code):
    dev = wires(acl_moat, cert="device1", version=version)
    rc = dev.connect("dev1-will", will={"topic": "devices/device2/telemetry/w",
                                        "payload": b"x"})
    assert rc == code
    ok = wires(acl_moat, cert="device1", version=version)
    assert ok.connect("dev1-will-ok", will={"topic": "devices/device1/telemetry/w",
                                            "payload": b"x"}) == 0
    assert "as dev1-will " not in broker.log()
    assert acl_moat.metric("moat_authz_denied_total", action="will") >= 1


def test_deliveries_checked(acl_moat, broker, clients, wires):
    """A subscription the gateway never saw (made in a persistent broker session, e.g. under an
    older policy) must not deliver what the identity may not read: live and queued messages."""
    direct = w.WireClient(h.HOST, broker.port, None, 4)
    try:
        assert direct.connect("dev1-deliver", clean=False) == 0
        assert direct.subscribe([("devices/#", 1)]) == [1]
        direct.send(w.disconnect_packet())
    finally:
        direct.close()
    broker.wait_log(r"Client dev1-deliver disconnected")
    op = connected(clients, acl_moat, cert="operator1", client_id="ops-pub")
    # Queued for the offline session: one the device may read, one it may not.
    op.publish("devices/device2/telemetry/queued", b"queued-secret", qos=1)
    op.publish("devices/device1/commands/queued", b"queued-fine", qos=1)
    dev = wires(acl_moat, cert="device1", version=4)
    assert dev.connect("dev1-deliver", clean=False) == 0
    op.publish("devices/device2/telemetry/live", b"live-secret", qos=1)
    op.publish("devices/device1/commands/secret/live", b"live-denied-sub", qos=1)
    op.publish("devices/device1/commands/open", b"fine", qos=1)
    got = dev.publishes(1.0)
    assert sorted(got) == [("devices/device1/commands/open", b"fine"),
                           ("devices/device1/commands/queued", b"queued-fine")]
    h.wait_until(lambda: acl_moat.metric("moat_authz_denied_total", action="deliver") >= 3, 5,
                 message="moat_authz_denied_total{action=deliver} >= 3")


def test_topic_alias_cannot_bypass_acl(acl_moat, clients, wires):
    op = operator(clients, acl_moat)
    dev = wires(acl_moat, cert="device1", version=5)
    assert dev.connect("dev1-alias") == 0
    alias = [(w.PROP_TOPIC_ALIAS, 1)]
    assert dev.publish("devices/device1/telemetry/a", b"ok", qos=1, packet_id=1,
                       props=alias) == 0
    assert dev.publish("devices/device2/telemetry/x", b"denied-with-topic", qos=1,
                       packet_id=2, props=alias) == 0x87
    code = dev.publish("", b"denied-by-alias", qos=1, packet_id=3, props=alias)
    assert code == 0x87
    m = op.get(10)
    assert m is not None and (m.topic, m.payload) == ("devices/device1/telemetry/a", b"ok")
    op.expect_none(1.0)


def explain(moat, identity, action, topic, client_id=None):
    args = [h.moat_bin(), "explain", "-c", moat.config_path, "--identity", identity]
    if client_id:
        args += ["--client-id", client_id]
    return subprocess.run(args + [action, topic], capture_output=True, text=True, timeout=10)


def test_explain(moat_factory):
    moat = moat_factory(POLICY, start=False)
    r = explain(moat, "device1", "publish", "devices/device1/telemetry/t")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("allow") and "role device publish[0]" in r.stdout
    r = explain(moat, "device1", "publish", "devices/device2/telemetry/t")
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith("deny") and "default deny" in r.stdout
    r = explain(moat, "device1", "subscribe", "devices/device1/commands/secret/x")
    assert r.returncode == 3
    assert "deny_subscribe[0]" in r.stdout
    r = explain(moat, "ops-console", "subscribe", "devices/+/telemetry/#")
    assert r.returncode == 0 and "role operator subscribe[0]" in r.stdout
    r = explain(moat, "device1", "dance", "x")
    assert r.returncode == 1
