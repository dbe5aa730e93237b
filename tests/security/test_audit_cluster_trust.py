"""Issue 18.3: the cluster channel and the Redis keys are not trusted blindly.

Anyone who can publish on the channel or write the keys must not be able to ban for longer
than bans.max_duration, bring back a ban that was deleted from Redis, stop banning by filling
the ban table, grow memory without bound, or (with cluster.key_file) do anything at all:
unsigned or badly signed events and records are dropped and counted. Real redis-server, two
real replicas (tests/integration/test_cluster.py)."""

import subprocess

import moat_harness as h
from moat_harness import HOST
from test_cluster import _replicas, conns, redis  # noqa: F401 (fixtures)

BANS = {"auth_failures": 3, "window": "60s", "duration": "5m", "max_duration": "1h"}
YEAR_MS = 366 * 24 * 3600 * 1000


def _cli(redis, *args, stdin=None):
    r = subprocess.run(["redis-cli", "-h", HOST, "-p", str(redis.port)] + list(args),
                       input=stdin, capture_output=True, timeout=60, check=True)
    return r.stdout.decode().strip()


def _resp(*args):
    out = "*%d\r\n" % len(args)
    for a in args:
        a = str(a)
        out += "$%d\r\n%s\r\n" % (len(a.encode()), a)
    return out


def _pipe(redis, commands):
    """Sends many commands at once (redis-cli --pipe)."""
    _cli(redis, "--pipe", stdin="".join(_resp(*c) for c in commands).encode())


def _publish(redis, line):
    _cli(redis, "PUBLISH", "it:events", line)


def _key_file(tmp_path, name="cluster.key", secret="k" * 64):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(secret + "\n")
    return path


def _ban_audit(moat, ip):
    return [e for e in moat.audit_events("ban") if e.get("remote") == ip
            and e.get("reason") == "cluster"]


def _rejected(moat, reason, metric="moat_cluster_events_rejected_total"):
    return moat.metric(metric, reason=reason)


def _restart_redis(redis, replicas):
    """Redis restarts empty (no persistence): every replica reconnects and resynchronises."""
    redis.kill()
    for m in replicas:
        h.wait_until(lambda m=m: m.metric("moat_cluster_redis_up") == 0, 10,
                     message="replica to see redis down")
    redis.start()
    for m in replicas:
        h.wait_until(lambda m=m: m.metric("moat_cluster_redis_up") == 1, 20,
                     message="replica to reconnect to redis")


def _resynced(redis, a, b):
    """Waits until B heard A after A's resync: Redis ran A's resync commands by then."""
    before = b.metric("moat_cluster_events_total", direction="received", type="hb")
    h.wait_until(lambda: b.metric("moat_cluster_events_total", direction="received",
                                  type="hb") > before, 10, message="a heartbeat after resync")


# ---------------------------------------------------------------------------------------------

def test_with_key_file_forged_events_and_records_are_dropped(moat_factory, tmp_path, redis,
                                                            conns):
    a, b = _replicas(moat_factory, tmp_path, redis, bans=BANS,
                     cluster={"key_file": _key_file(tmp_path)})
    # Signed events between replicas work: a ban through A holds at B.
    for i in range(3):
        assert conns(a, "127.0.0.61", "bad-%d" % i, cert=None, username="alice",
                     password="wrong")[0] in (0x86, 0x8A)
    h.wait_until(lambda: conns(b, "127.0.0.61", "probe")[0] is None, 10, interval=0.2,
                 message="A's signed ban to hold at B")

    # Unsigned, wrongly signed and altered events: dropped and counted.
    _publish(redis, "moat1 ban mallory ip 127.0.0.62 300000 300000")
    _publish(redis, "moat1 ban mallory ip 127.0.0.63 300000 300000 t=1 s=" + "0" * 64)
    _publish(redis, "moat1 conn mallory 127.0.0.64 4000000000 0")
    _publish(redis, "moat1 kick mallory alice banned -")
    h.wait_until(lambda: _rejected(b, "unsigned") >= 3 and _rejected(b, "bad_signature") >= 1,
                 10, message="forged events to be counted as rejected")
    assert conns(b, "127.0.0.62", "not-banned")[0] == 0
    assert conns(b, "127.0.0.63", "not-banned-either")[0] == 0
    assert conns(b, "127.0.0.64", "not-locked-out")[0] == 0
    assert b.metric("moat_cluster_remote_connections") == 0
    assert not _ban_audit(b, "127.0.0.62")

    # A ban key written straight into Redis (unsigned, or signed with another key) is not
    # adopted after a resync either.
    _cli(redis, "SET", "it:ban:ip:127.0.0.65", "300000", "PX", "300000")
    _cli(redis, "SET", "it:ban:ip:127.0.0.66", "300000 %d %s" % (2 ** 42, "a" * 64), "PX",
         "300000")
    _cli(redis, "CLIENT", "KILL", "TYPE", "normal")  # the replicas reconnect and resync
    h.wait_until(lambda: _rejected(b, "unsigned", "moat_cluster_records_rejected_total") >= 1
                 and _rejected(b, "bad_signature", "moat_cluster_records_rejected_total") >= 1,
                 20, message="forged ban keys to be rejected at resync")
    assert conns(b, "127.0.0.65", "key-not-adopted")[0] == 0
    assert conns(b, "127.0.0.66", "signed-key-not-adopted")[0] == 0


def test_a_ban_from_the_channel_or_redis_is_clamped_to_max_duration(moat_factory, tmp_path,
                                                                   redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis, bans=BANS)  # no key_file: unsigned accepted
    _publish(redis, "moat1 ban mallory ip 127.0.0.71 %d %d" % (YEAR_MS, YEAR_MS))
    b.wait_audit(lambda e: _ban_audit(b, "127.0.0.71"), message="the adopted ban")
    assert all(e["count"] <= 3600 for e in _ban_audit(b, "127.0.0.71")), _ban_audit(b, "127.0.0.71")
    # A key with a year-long TTL is held to max_duration too.
    _cli(redis, "SET", "it:ban:ip:127.0.0.72", "1000", "PX", str(YEAR_MS))
    _cli(redis, "CLIENT", "KILL", "TYPE", "normal")
    b.wait_audit(lambda e: _ban_audit(b, "127.0.0.72"), timeout=20, message="the adopted key")
    assert all(e["count"] <= 3600 for e in _ban_audit(b, "127.0.0.72")), _ban_audit(b, "127.0.0.72")


def test_adopted_bans_are_not_pushed_back_to_redis(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis, bans=BANS)
    _publish(redis, "moat1 ban mallory ip 127.0.0.81 300000 300000")
    for m in (a, b):
        m.wait_audit(lambda e, m=m: _ban_audit(m, "127.0.0.81"), message="the adopted ban")
    # A ban made here is pushed again after a resync (Redis lost it) ...
    for i in range(3):
        assert conns(a, "127.0.0.82", "bad-%d" % i, cert=None, username="alice",
                     password="wrong")[0] in (0x86, 0x8A)
    h.wait_until(lambda: _cli(redis, "EXISTS", "it:ban:ip:127.0.0.82") == "1", 10,
                 message="A's own ban key")
    _restart_redis(redis, (a, b))
    _resynced(redis, a, b)
    _resynced(redis, b, a)
    h.wait_until(lambda: _cli(redis, "EXISTS", "it:ban:ip:127.0.0.82") == "1", 10,
                 message="A's own ban pushed again")
    # ... an adopted one is not: its key stays gone (deleted, or never there).
    assert _cli(redis, "EXISTS", "it:ban:ip:127.0.0.81") == "0"


def test_a_flood_of_forged_bans_does_not_stop_real_bans(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis, bans=BANS)
    # More bans than the table holds (100000 per kind), for an hour each.
    n = 100500
    _pipe(redis, [("PUBLISH", "it:events", "moat1 ban mallory ip 10.%d.%d.%d 3600000 3600000"
                   % (i >> 16, (i >> 8) & 255, i & 255)) for i in range(n)])
    h.wait_until(lambda: b.metric("moat_cluster_events_total", direction="received",
                                  type="ban") >= n, 60, interval=0.5,
                 message="the flood to be taken in (each adopted ban in O(log n))")
    assert b.metric("moat_bans_active") <= 100000
    # A real attacker at B is still banned: the table makes room (the ban ending soonest).
    for i in range(3):
        assert conns(b, "127.0.0.91", "brute-%d" % i, cert=None, username="alice",
                     password="wrong-%d" % i)[0] in (0x86, 0x8A)
    assert conns(b, "127.0.0.91", "brute-after")[0] is None
    assert conns(b, "127.0.0.92", "bystander")[0] == 0


def test_conn_events_with_new_addresses_are_bounded(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis)
    n = 220000  # more than the remote tables hold (200000 replica/address pairs)
    _pipe(redis, [("PUBLISH", "it:events", "moat1 conn mallory 10.%d.%d.%d 1 0"
                   % (i >> 16, (i >> 8) & 255, i & 255)) for i in range(n)])
    h.wait_until(lambda: b.metric("moat_cluster_events_total", direction="received",
                                  type="conn") >= n, 60, interval=0.5,
                 message="the flood to be taken in")
    assert b.metric("moat_cluster_remote_connections") <= 200000
    assert b.metric("moat_cluster_remote_dropped_total") > 0
    # Not an address: refused before it takes any memory.
    before = _rejected(b, "invalid")
    _publish(redis, "moat1 conn mallory not-an-address 1 0")
    h.wait_until(lambda: _rejected(b, "invalid") > before, 10, message="an invalid conn event")
    assert conns(b, "127.0.0.95", "still-serves")[0] == 0


def test_oversized_records_in_redis_are_refused_cheaply(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis, bans=BANS)
    # A "replica" hash with more fields than any replica can hold, and a huge ban value.
    _pipe(redis, [["HSET", "it:conn:mallory"] + sum((["10.%d.%d.%d" % (i >> 16, (i >> 8) & 255,
                                                                      i & 255), "1"]
                                                     for i in range(j, j + 1000)), [])
                  for j in range(0, 250000, 1000)])
    _pipe(redis, [("SET", "it:ban:ip:127.0.0.97", "9" * (1 << 20), "PX", "300000")])
    before = b.metric("moat_cluster_records_rejected_total", reason="malformed")
    _publish(redis, "moat1 hb mallory")  # B fetches the "replica's" hash
    _cli(redis, "CLIENT", "KILL", "TYPE", "normal")  # and rescans the ban keys
    h.wait_until(lambda: b.metric("moat_cluster_redis_up") == 1 and b.metric(
        "moat_cluster_records_rejected_total", reason="malformed") >= before + 2, 20,
        message="the oversized hash and ban value to be refused")
    assert b.metric("moat_cluster_remote_connections") == 0
    assert conns(b, "127.0.0.97", "not-banned")[0] == 0
    assert b.metric("moat_cluster_redis_up") == 1
