"""Findings 19.2 / 19.3: the password-check pool. Expensive PBKDF2 hashes must not let a login
flood go uncounted, starve reloads, or crash the gateway.

- 19.2: a failure is counted when a check is queued or started, so checks that time out in the
  queue still ban the address; reloads never wait behind PBKDF2 (its own threads); a full
  queue refuses with CONNACK 0x89 (v3 0x03), counted.
- 19.3: the wait queue is served iteratively: 1,500 waiters with a 256 KiB stack are fine.

The hashes are made expensive on purpose (millions of PBKDF2 iterations). No test here
asserts a duration: they check what happened and in which order."""

import resource
import time

import moat_harness as h
import mqtt_wire as w

from auth_util import SourceWire, attempt, password_file, password_moat

SLOW = 3_000_000  # iterations: seconds of CPU per check


def _send_connects(moat, sources, user, password, version=5):
    """Opens one connection per source address and sends CONNECT without waiting."""
    clients = []
    for i, src in enumerate(sources):
        c = SourceWire(moat, src, version=version, timeout=120)
        c.send(w.connect_packet("flood-%d" % i, version=version, username=user,
                                password=password))
        clients.append(c)
    return clients


def _connack(c, timeout):
    """The CONNACK code, read without select() (descriptors above 1024 in the big test)."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < 4 and time.monotonic() < deadline:
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = c.sock.recv(64)
        except OSError:
            return None
        if not chunk:
            break
        data += chunk
    return data[3] if len(data) >= 4 and data[0] >> 4 == 2 else None


def test_checks_that_time_out_in_the_queue_are_counted(moat_factory, tmp_path):
    pw = password_file(tmp_path, {"victim": ("right", SLOW)})
    moat = password_moat(moat_factory, pw,
                         bans={"auth_failures": 3, "window": "60s", "duration": "5m",
                               "max_duration": "1h"},
                         limits={"handshake_timeout": "1s"})
    src = "127.0.0.40"
    # Six guesses at once from one address; each check takes longer than handshake_timeout.
    clients = _send_connects(moat, [src] * 6, "victim", "guess")
    try:
        # Every guess counts from the moment it is queued: the address is banned, although
        # no check finished within handshake_timeout (the old code counted none of them).
        moat.wait_audit(lambda e: e.get("event") == "ban" and e.get("remote") == src, 30,
                        message="the guessing address banned")
        assert attempt(moat, src, "after", "victim", "right") is None  # refused at accept
        assert moat.metric("moat_bans_active") >= 1
    finally:
        for c in clients:
            c.close()


def test_reload_is_not_queued_behind_password_checks(moat_factory, tmp_path):
    pw = password_file(tmp_path, {"victim": ("right", SLOW)})
    moat = password_moat(moat_factory, pw, limits={"handshake_timeout": "120s"})
    # Enough expensive checks to occupy every thread of libuv's pool (4).
    clients = _send_connects(moat, ["127.0.0.%d" % (50 + i) for i in range(4)], "victim",
                             "guess")
    try:
        time.sleep(0.5)  # let the gateway read the CONNECTs (order of inputs only)
        moat.proc.send_signal(1)  # SIGHUP
        moat.wait_audit(lambda e: e.get("event") == "reload", 120, message="the reload")
        for c in clients:
            assert _connack(c, 120) == 0x86
        events = [e for e in moat.audit_events()
                  if e.get("event") == "reload"
                  or (e.get("event") == "auth_failure" and e.get("identity") == "victim")]
        # The reload was done before the first password check finished.
        assert events[0].get("event") == "reload", events[:3]
    finally:
        for c in clients:
            c.close()


def test_many_waiters_with_a_small_stack(moat_factory, tmp_path):
    """1,500 connections waiting for a password check on one worker, 256 KiB stacks: the old
    hand-over recursed once per waiter and crashed when the first check ended."""
    pw = password_file(tmp_path, {"victim": ("right", SLOW)})
    moat = password_moat(moat_factory, pw, limits={"handshake_timeout": "120s"},
                         listener={"workers": 1}, start=False)
    old = resource.getrlimit(resource.RLIMIT_STACK)
    resource.setrlimit(resource.RLIMIT_STACK, (256 * 1024, old[1]))
    try:
        moat.start()
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, old)
    sources = ["127.0.1.%d" % (1 + i % 15) for i in range(1500)]
    clients = []
    try:
        for v, src in enumerate(sources):
            version = 5 if v % 2 else 4
            c = SourceWire(moat, src, version=version, timeout=120)
            c.send(w.connect_packet("w-%d" % v, version=version, username="victim",
                                    password="guess"))
            clients.append((version, c))
        # The first checks end; every waiter is handed on.
        h.wait_until(lambda: moat.proc.poll() is not None or moat.metric(
            "moat_auth_total", method="password", result="failure") >= 2, 120, interval=0.5,
            message="the first password checks to finish")
        assert moat.proc.poll() is None, "moat died: " + moat.stderr()[-2000:]
        # The queue is bounded: the excess was refused as busy at once (v5 0x89, v3 0x03),
        # and counted.
        busy = 0
        for version, c in clients[-200:]:
            code = _connack(c, 0.05)
            if code == (0x89 if version == 5 else 0x03):
                busy += 1
        assert busy > 0
        assert moat.metric("moat_rate_limited_total", limit="auth_queue") > 0
        assert moat.proc.poll() is None
    finally:
        for _, c in clients:
            c.close()


def test_a_fleet_behind_one_address_reconnecting_at_once_is_not_banned(moat_factory, tmp_path):
    """Twenty devices behind one NAT address reconnect at once (after a broker restart) with
    correct passwords, under the default bans (5 failures). Charging every started check
    against the address banned it; only settled failures count now (found by the soak)."""
    import threading
    users = {"dev%d" % i: ("pw-%d" % i, 200000) for i in range(20)}
    # The checks are slow on purpose (they must overlap); on a loaded machine twenty of them
    # can outlast the default 10 s handshake_timeout, which would end the last devices before
    # their CONNACK (correctly, but this test is about bans, not about that deadline).
    moat = password_moat(moat_factory, password_file(tmp_path, users),
                         bans={"auth_failures": 5, "window": "60s", "duration": "5m"},
                         limits={"handshake_timeout": "60s"})
    codes = {}

    def login(user):
        codes[user] = attempt(moat, "127.0.4.1", "nat-" + user, user, users[user][0],
                              timeout=30)

    threads = [threading.Thread(target=login, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(code == 0 for code in codes.values()), {u: c for u, c in codes.items() if c != 0}
    assert moat.metric("moat_bans_active") == 0
    assert not [e for e in moat.audit_events("ban")], moat.audit_events("ban")
