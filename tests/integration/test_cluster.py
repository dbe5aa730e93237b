"""Two gateway replicas sharing state through a real redis-server (config `cluster:`): bans,
identity kicks, per-IP connection limits and rates across replicas, and degradation to
local-only limits while Redis is down, with resynchronisation when it returns.

Every test starts its own redis-server on a free port (no persistence) and kills it at the
end. Source addresses 127.0.0.x (all loopback on Linux) keep each scenario's per-IP state
apart from the harness's own readiness probes."""

import os
import socket
import ssl
import subprocess

import pytest

import moat_harness as h
import mqtt_wire as w
from moat_harness import HOST, V5

REDIS = "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(not os.access(REDIS, os.X_OK), reason="redis-server missing")


class Redis:
    def __init__(self, workdir, extra=()):
        self.dir = workdir
        self.port = h.free_port()
        self.extra = list(extra)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_until(lambda: self.proc.poll() is not None or h.port_accepts(HOST, self.port), 10,
                     message="redis-server to listen")
        assert self.proc.poll() is None, "redis-server exited"
        return self

    def kill(self):
        h.kill_process(self.proc)


@pytest.fixture
def redis(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    r = Redis(str(d)).start()
    yield r
    r.kill()


def _password_file(tmp_path):
    path = str(tmp_path / "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", path, "alice", "alice-pass"], check=True,
                   capture_output=True, timeout=10)
    return path


def _replicas(moat_factory, tmp_path, redis, limits=None, bans=None, cluster=None):
    """Two replicas, A and B, on one broker and one Redis; devices log in with a client
    certificate (identity = CN) or as alice with a password."""
    overrides = {
        "auth": {"methods": ["certificate", "password"], "require": "any",
                 "password_file": _password_file(tmp_path)},
        "bans": bans or {"auth_failures": 1000},
        "cluster": dict({"redis": "%s:%d" % (HOST, redis.port), "key_prefix": "it:"},
                        **(cluster or {})),
    }
    if limits:
        overrides["limits"] = limits
    a = moat_factory(overrides, tls={"require_client_cert": False})
    b = moat_factory(overrides, tls={"require_client_cert": False})
    for m in (a, b):
        h.wait_until(lambda m=m: m.metric("moat_cluster_redis_up") == 1, 10,
                     message="replica connected to redis")
        h.wait_until(lambda m=m: m.metric("moat_cluster_peers") == 1, 10,
                     message="replica to hear from the other one")
    return a, b


class SourceWire(w.WireClient):
    """A TLS MQTT connection from a chosen loopback source address."""

    def __init__(self, moat, src, cert="device1", version=V5, timeout=5.0):
        self.version = version
        self.timeout = timeout
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(timeout)
        raw.bind((src, 0))
        raw.connect((HOST, moat.port))
        try:
            self.sock = moat.certs.context(cert).wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()


@pytest.fixture
def conns():
    made = []

    def attempt(moat, src, cid, cert="device1", username=None, password=None):
        """(CONNACK code, open connection) — code None when refused before a CONNACK."""
        try:
            c = SourceWire(moat, src, cert)
        except (OSError, ssl.SSLError):
            return None, None
        made.append(c)
        try:
            code = c.connect(cid, username=username, password=password)
        except (OSError, EOFError, ssl.SSLError, w.WireError):
            c.close()
            return None, None
        if code != 0:
            c.close()
            return code, None
        return code, c

    yield attempt
    for c in made:
        c.close()


def _limited(moat, limit):
    return moat.metric("moat_rate_limited_total", limit=limit)


# ---------------------------------------------------------------------------------------------

def test_ban_through_a_refuses_at_b_and_never_kicks_the_identity(moat_factory, tmp_path, redis,
                                                                  conns):
    a, b = _replicas(moat_factory, tmp_path, redis,
                     bans={"auth_failures": 3, "window": "60s", "duration": "5m",
                           "max_duration": "1h"})
    # alice is connected through B.
    code, alice = conns(b, "127.0.0.11", "alice-b", cert=None, username="alice",
                        password="alice-pass")
    assert code == 0
    # Three wrong passwords for alice through A, from another address.
    for i in range(3):
        code, _ = conns(a, "127.0.0.12", "bad-%d" % i, cert=None, username="alice",
                        password="wrong-%d" % i)
        assert code in (0x86, 0x8A)
    # The address ban reaches B.
    b.wait_audit(lambda e: e.get("event") == "ban" and e.get("remote") == "127.0.0.12"
                 and e.get("reason") == "cluster", message="cluster ban audit at B")
    assert b.metric("moat_bans_active") >= 1
    # The attacker's address is refused at B's accept, before TLS.
    code, _ = conns(b, "127.0.0.12", "from-banned-ip", cert="device1")
    assert code is None
    # CONTRACT §3: identities are never banned — alice's live session stays, and her
    # password still works (failing as alice cannot lock her out).
    alice.send(bytes([0xC0, 0x00]))  # PINGREQ
    assert alice.expect(13, timeout=5) is not None
    code, _ = conns(b, "127.0.0.11", "alice-again", cert=None, username="alice",
                    password="alice-pass")
    assert code == 0
    assert not [e for e in b.audit_events("ban") if e.get("identity") == "alice"]
    # Other devices are unaffected.
    code, _ = conns(b, "127.0.0.13", "device1-ok", cert="device1")
    assert code == 0
    assert b.metric("moat_cluster_events_total", direction="received", type="ban") >= 1


def test_failures_spread_over_replicas_add_up(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis,
                     bans={"auth_failures": 4, "window": "60s", "duration": "5m",
                           "max_duration": "1h"})
    # Two failures at each replica: neither reaches 4 alone, together they do.
    for i, m in enumerate((a, b, a, b)):
        code, _ = conns(m, "127.0.0.21", "spread-%d" % i, cert=None, username="alice",
                        password="wrong")
        assert code in (0x86, 0x8A)
    for m in (a, b):
        h.wait_until(lambda m=m: conns(m, "127.0.0.21", "probe", cert="device1")[0] is None, 10,
                     interval=0.2, message="the shared failure count to ban the address")


def test_max_connections_per_ip_is_global(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis, limits={"max_connections_per_ip": 2})
    src = "127.0.0.31"
    code, first = conns(a, src, "pip-a1")
    assert code == 0
    code, second = conns(b, src, "pip-b1")
    assert code == 0
    for m in (a, b):
        h.wait_until(lambda m=m: m.metric("moat_cluster_remote_connections") == 1, 10,
                     message="the other replica's connection to be known")
    # 1 at A + 1 at B = the limit of 2: a third is refused at either replica.
    before = _limited(a, "max_connections_per_ip") + _limited(b, "max_connections_per_ip")
    assert conns(a, src, "pip-a2")[0] is None
    assert conns(b, src, "pip-b2")[0] is None
    assert _limited(a, "max_connections_per_ip") + _limited(b, "max_connections_per_ip") \
        >= before + 2
    # Another address is unaffected.
    assert conns(a, "127.0.0.32", "pip-other")[0] == 0
    # When B's connection ends, A may take one more.
    second.send(w.disconnect_packet(V5))
    second.close()
    h.wait_until(lambda: a.metric("moat_cluster_remote_connections") == 0, 10,
                 message="B's closed connection to be known at A")
    assert conns(a, src, "pip-a3")[0] == 0


def test_connection_rate_per_ip_is_global(moat_factory, tmp_path, redis, conns):
    # 1/m: one connection per source address per minute (burst below one token: the first
    # connection is allowed and leaves the bucket in debt for a minute).
    a, b = _replicas(moat_factory, tmp_path, redis, limits={"connection_rate_per_ip": "1/m"})
    src = "127.0.0.41"
    assert conns(a, src, "rate-a1")[0] == 0
    h.wait_until(lambda: b.metric("moat_cluster_remote_connections") == 1, 10,
                 message="A's accept to reach B")
    before = _limited(b, "connection_rate")
    assert conns(b, src, "rate-b1")[0] is None
    assert _limited(b, "connection_rate") == before + 1
    # Another address still gets its one connection at B.
    assert conns(b, "127.0.0.42", "rate-b2")[0] == 0


def test_redis_down_local_limits_then_resync(moat_factory, tmp_path, redis, conns):
    a, b = _replicas(moat_factory, tmp_path, redis, limits={"max_connections_per_ip": 1},
                     bans={"auth_failures": 2, "window": "60s", "duration": "5m",
                           "max_duration": "1h"})
    redis.kill()
    for m in (a, b):
        h.wait_until(lambda m=m: m.metric("moat_cluster_redis_up") == 0, 10,
                     message="replica to see redis down")
        assert m.http_get("/healthz")[0] == 200
        assert m.metric("moat_cluster_sync_errors_total") >= 1
        m.wait_audit(lambda e: e.get("event") == "cluster" and "degraded" in e.get("reason", ""),
                     message="a 'degraded' audit event")
    assert "degraded to local-only limits" in a.stderr()
    # Local-only limits: one connection from the address at each replica, not one in all...
    src = "127.0.0.51"
    code, at_a = conns(a, src, "down-a1")
    assert code == 0
    code, at_b = conns(b, src, "down-b1")
    assert code == 0
    # ... but each replica still enforces its own.
    assert conns(a, src, "down-a2")[0] is None
    # A ban made while Redis is down stays local for now. Each bad login must be a real
    # authentication failure: wait for the previous one's connection to be released first,
    # or max_connections_per_ip (1) refuses the next at accept and nothing is counted.
    active = a.metric("moat_connections_active", listener="mqtts")
    for i in range(2):
        h.wait_until(lambda: a.metric("moat_connections_active", listener="mqtts") == active, 5,
                     message="the previous bad login's connection to be released")
        assert conns(a, "127.0.0.52", "down-bad-%d" % i, cert=None, username="alice",
                     password="wrong")[0] == 0x86
    assert conns(a, "127.0.0.52", "down-banned")[0] is None
    assert conns(b, "127.0.0.53", "down-b-other")[0] == 0

    # Redis returns (same port): both reconnect (backoff) and resynchronise.
    redis.start()
    for m in (a, b):
        h.wait_until(lambda m=m: m.metric("moat_cluster_redis_up") == 1, 20,
                     message="replica to reconnect to redis")
        h.wait_until(lambda m=m: m.metric("moat_cluster_remote_connections") >= 1, 10,
                     message="the other replica's connections after resync")
    a.wait_audit(lambda e: e.get("event") == "cluster" and "redis up" in e.get("reason", ""),
                 message="a 'redis up' audit event")
    # A's ban made during the outage now holds at B too.
    h.wait_until(lambda: b.metric("moat_bans_active") >= 1, 10, message="A's ban at B")
    assert conns(b, "127.0.0.52", "resync-banned")[0] is None
    # Shared limits again: B already knows A's connection from src (and its own): full.
    assert conns(b, src, "resync-b2")[0] is None


def test_redis_with_a_password(moat_factory, tmp_path, conns):
    """A Redis that requires AUTH (an ACL user here): with the right password_file the
    replicas share bans; with a wrong one a replica says why, stays in local-only mode and
    keeps serving devices."""
    d = tmp_path / "redis-acl"
    d.mkdir()
    redis = Redis(str(d), ["--user", "default", "off", "--user", "moat", "on", ">gw-secret",
                           "~*", "&*", "+@all"]).start()
    try:
        good = tmp_path / "redis.pass"
        good.write_text("gw-secret\n")
        a, b = _replicas(moat_factory, tmp_path, redis,
                         bans={"auth_failures": 2, "window": "60s", "duration": "5m",
                               "max_duration": "1h"},
                         cluster={"username": "moat", "password_file": str(good)})
        for i in range(2):
            assert conns(a, "127.0.0.61", "acl-bad-%d" % i, cert=None, username="alice",
                         password="wrong")[0] in (0x86, 0x8A)
        h.wait_until(lambda: b.metric("moat_bans_active") >= 1, 10, message="A's ban at B")
        assert conns(b, "127.0.0.61", "acl-banned")[0] is None

        bad = tmp_path / "wrong.pass"
        bad.write_text("not-it\n")
        c = moat_factory({"cluster": {"redis": "%s:%d" % (HOST, redis.port),
                                      "username": "moat", "password_file": str(bad)}})
        h.wait_until(lambda: "AUTH refused" in c.stderr(), 10, message="the AUTH refusal logged")
        assert "WRONGPASS" in c.stderr()
        assert "not-it" not in c.stderr()  # the password itself is never logged
        assert c.metric("moat_cluster_redis_up") == 0
        assert c.http_get("/healthz")[0] == 200
        code, _ = conns(c, "127.0.0.62", "acl-local-only")
        assert code == 0
    finally:
        redis.kill()


def test_redis_that_never_answers(moat_factory, conns):
    """A "Redis" that accepts TCP and then says nothing (a hung server, a wrong port behind
    a proxy): the replica gives up on it within 3 s, retries with backoff, and keeps
    serving with local limits — it does not hang in "connecting"."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind((HOST, 0))
    silent.listen(16)
    try:
        m = moat_factory({"cluster": {"redis": "%s:%d" % (HOST, silent.getsockname()[1])}})
        h.wait_until(lambda: "not connected within 3 s" in m.stderr(), 10,
                     message="the connect deadline to fire")
        assert m.metric("moat_cluster_redis_up") == 0
        assert m.http_get("/healthz")[0] == 200
        assert conns(m, "127.0.0.71", "silent-redis")[0] == 0
    finally:
        silent.close()
