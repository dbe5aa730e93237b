"""Client-id ownership (auth.protect_client_ids, CONTRACT §3; the class of Mosquitto issue
#3553): a client id belongs to the identity holding it, while connected and afterwards for
min(its session's expiry, session_owner_ttl). Another identity reusing it is refused (v5
CONNACK 0x85, v3 0x02), its owner is untouched; the same identity may take its own session
over. Real Mosquitto, real TLS, raw MQTT clients (persistent sessions, DISCONNECT properties).
"""

import json
import os
import subprocess
import urllib.request

import pytest

import moat_harness as h
import mqtt_wire as w
from moat_harness import HOST, V311, V5
from test_cluster import REDIS, Redis

REFUSED = {V311: 0x02, V5: 0x85}
VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
SESSION_EXPIRY = 0x11


def persistent(version, expiry=3600):
    """CONNECT options of a persistent session (v3 clean session 0; v5 clean start 0 and a
    Session Expiry Interval)."""
    if version == V5:
        return {"clean": False, "props": [(SESSION_EXPIRY, expiry)]}
    return {"clean": False}


def clean(version):
    return {"clean": True}


def pingable(client):
    """The connection is alive: a PINGREQ gets its PINGRESP."""
    client.send(w.packet(w.PINGREQ, 0, b""))
    return client.expect(w.PINGRESP).type == w.PINGRESP


def broker_connects(broker, client_id):
    return sum(1 for line in broker.log().splitlines()
               if "New client connected" in line and (" as %s " % client_id) in line)


def admin(moat, method, path):
    req = urllib.request.Request("http://%s:%d%s" % (HOST, moat.metrics_port, path),
                                 method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


@VERSIONS
@pytest.mark.parametrize("session", ["persistent", "clean"])
def test_takeover_refused_while_owner_connected(moat, broker, wires, version, session):
    opts = persistent(version) if session == "persistent" else clean(version)
    owner = wires(moat, cert="device1", version=version)
    assert owner.connect("shared-live", **opts) == 0
    thief = wires(moat, cert="device2", version=version)
    assert thief.connect("shared-live", **opts) == REFUSED[version]
    thief.wait_closed()
    # The owner is untouched: still connected, never kicked by the broker.
    assert pingable(owner)
    assert broker_connects(broker, "shared-live") == 1
    ev = moat.wait_audit(lambda e: e.get("event") == "authz_denied"
                         and e.get("action") == "client_id")[0]
    assert ev["identity"] == "device2" and ev["client_id"] == "shared-live"
    assert moat.metric("moat_client_id_refused_total") == 1


@VERSIONS
def test_takeover_refused_after_a_persistent_owner_left(moat, broker, wires, version):
    owner = wires(moat, cert="device1", version=version)
    assert owner.connect("shared-left", **persistent(version)) == 0
    assert owner.subscribe([("t/queued", 1)]) == [1]
    owner.send(w.disconnect_packet(version))
    owner.wait_closed()
    # A message queued for the owner's stored session.
    assert h.mosquitto_pub(moat, "t/queued", "for-the-owner", qos=1,
                           cert="operator1").returncode == 0
    thief = wires(moat, cert="device2", version=version)
    assert thief.connect("shared-left", **persistent(version)) == REFUSED[version]
    thief.wait_closed()
    # The owner comes back to its session and its queued message.
    back = wires(moat, cert="device1", version=version)
    assert back.connect("shared-left", **persistent(version)) == 0
    got = back.publishes(1.0)
    assert ("t/queued", b"for-the-owner") in got


@VERSIONS
def test_a_clean_session_frees_the_id_when_it_ends(moat, wires, version):
    owner = wires(moat, cert="device1", version=version)
    assert owner.connect("shared-clean", **clean(version)) == 0
    owner.send(w.disconnect_packet(version))
    owner.wait_closed()
    # No session is left to steal: another identity may use the id (as today).
    h.wait_until(lambda: not admin(moat, "GET", "/owners"), 10, message="id released")
    other = wires(moat, cert="device2", version=version)
    assert other.connect("shared-clean", **clean(version)) == 0


def test_v5_disconnect_session_expiry_zero_frees_the_id(moat, wires):
    owner = wires(moat, cert="device1", version=V5)
    assert owner.connect("shared-disc", **persistent(V5)) == 0
    # DISCONNECT with Session Expiry 0: the session ends with the connection.
    owner.send(w.packet(w.DISCONNECT, 0, bytes([0]) + w.properties([(SESSION_EXPIRY, 0)])))
    owner.wait_closed()
    h.wait_until(lambda: not admin(moat, "GET", "/owners"), 10, message="id released")
    other = wires(moat, cert="device2", version=V5)
    assert other.connect("shared-disc", **persistent(V5)) == 0


@VERSIONS
def test_the_id_is_free_again_after_session_owner_ttl(moat_factory, wires, version):
    moat = moat_factory({"auth": {"session_owner_ttl": "6s"}})
    owner = wires(moat, cert="device1", version=version)
    assert owner.connect("shared-ttl", **persistent(version)) == 0
    owner.send(w.disconnect_packet(version))
    owner.wait_closed()
    # The gateway releases the id once it has closed the connection on its side too.
    h.wait_until(lambda: not any(o["connected"] for o in admin(moat, "GET", "/owners")), 10,
                 message="owner's connection to end")
    owners = admin(moat, "GET", "/owners")
    assert [o["client_id"] for o in owners] == ["shared-ttl"]
    assert owners[0]["identity"] == "device1" and not owners[0]["connected"]
    # Expired: the id can be claimed (each try before that is refused, nothing else).
    h.wait_until(lambda: not admin(moat, "GET", "/owners"), 30, message="hold to expire")
    other = wires(moat, cert="device2", version=version)
    assert other.connect("shared-ttl", **persistent(version)) == 0


@VERSIONS
def test_the_same_identity_takes_its_own_session_over(moat, broker, wires, version):
    first = wires(moat, cert="device1", version=version)
    assert first.connect("own-id", **persistent(version)) == 0
    second = wires(moat, cert="device1", version=version)
    assert second.connect("own-id", **persistent(version)) == 0
    # The broker hands the session over and ends the first connection.
    first.wait_closed()
    assert pingable(second)
    # Still owned by device1 after the first connection's end.
    thief = wires(moat, cert="device2", version=version)
    assert thief.connect("own-id", **persistent(version)) == REFUSED[version]


def test_protect_client_ids_false_keeps_the_old_behaviour(moat_factory, wires):
    moat = moat_factory({"auth": {"protect_client_ids": False}})
    owner = wires(moat, cert="device1", version=V5)
    assert owner.connect("unprotected", **persistent(V5)) == 0
    other = wires(moat, cert="device2", version=V5)
    assert other.connect("unprotected", **persistent(V5)) == 0
    owner.wait_closed()  # the broker kicked the first identity


def test_operators_list_and_release_owners(moat, wires):
    owner = wires(moat, cert="device1", version=V311)
    assert owner.connect("held-id", clean=False) == 0
    owner.send(w.disconnect_packet(V311))
    owner.wait_closed()
    h.wait_until(lambda: not any(o["connected"] for o in admin(moat, "GET", "/owners")), 10,
                 message="owner's connection to end")
    owners = admin(moat, "GET", "/owners")
    assert owners[0]["client_id"] == "held-id" and owners[0]["remaining_seconds"] > 0
    assert admin(moat, "POST", "/owners/release?client_id=held-id") == {"released": True}
    assert admin(moat, "POST", "/owners/release?client_id=held-id") == {"released": False}
    moat.wait_audit(lambda e: e.get("event") == "owner_released"
                    and e.get("client_id") == "held-id")
    other = wires(moat, cert="device2", version=V311)
    assert other.connect("held-id", clean=False) == 0
    # The CLI asks the same endpoint.
    out = subprocess.run([h.moat_bin(), "owners", "-c", moat.config_path], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "held-id" in out.stdout and "device2" in out.stdout


def test_identity_prefix_needs_a_separator(moat_factory, wires):
    moat = moat_factory({"auth": {"client_id": "identity_prefix"}})
    for cid, code in [("device1", 0), ("device1-a", 0), ("device1/b", 0), ("device10", 0x87)]:
        c = wires(moat, cert="device1", version=V5)
        assert c.connect(cid) == code, cid
        c.close()


# ---------------------------------------------------------------------------------------------
# Replicas share owners through the cluster Redis.

def _cluster_replica(moat_factory, redis):
    m = moat_factory({"cluster": {"redis": "%s:%d" % (HOST, redis.port), "key_prefix": "own:"}})
    h.wait_until(lambda: m.metric("moat_cluster_redis_up") == 1, 10,
                 message="replica connected to redis")
    return m


def _owns(moat, client_id, identity):
    return any(o["client_id"] == client_id and o["identity"] == identity
               for o in admin(moat, "GET", "/owners"))


@pytest.mark.skipif(not os.access(REDIS, os.X_OK), reason="redis-server missing")
@VERSIONS
def test_owners_are_shared_across_replicas(moat_factory, tmp_path, wires, version):
    d = tmp_path / "redis"
    d.mkdir()
    redis = Redis(str(d)).start()
    try:
        a = _cluster_replica(moat_factory, redis)
        b = _cluster_replica(moat_factory, redis)
        owner = wires(a, cert="device1", version=version)
        assert owner.connect("fleet-1", **persistent(version)) == 0
        h.wait_until(lambda: _owns(b, "fleet-1", "device1"), 10, message="owner shared")
        thief = wires(b, cert="device2", version=version)
        assert thief.connect("fleet-1", **persistent(version)) == REFUSED[version]
        assert pingable(owner)
        # The owner leaves A: its hold is shared too, and a replica started later reads it
        # from Redis.
        owner.send(w.disconnect_packet(version))
        owner.wait_closed()
        c = _cluster_replica(moat_factory, redis)
        h.wait_until(lambda: _owns(c, "fleet-1", "device1"), 10, message="owner read at start")
        for m in (b, c):
            t = wires(m, cert="device2", version=version)
            assert t.connect("fleet-1", **persistent(version)) == REFUSED[version]
        # Its own session, through another replica.
        back = wires(b, cert="device1", version=version)
        assert back.connect("fleet-1", **persistent(version)) == 0
        # Redis down: each replica goes on with the owners it knows, and says so.
        redis.kill()
        a.wait_audit(lambda e: e.get("event") == "cluster"
                     and "client-id owners" in e.get("reason", ""))
        t = wires(a, cert="device2", version=version)
        assert t.connect("fleet-1", **persistent(version)) == REFUSED[version]
    finally:
        redis.kill()
