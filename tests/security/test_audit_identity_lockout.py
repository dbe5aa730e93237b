"""Finding 18.7: nobody can lock another identity out by failing on purpose (CONTRACT §3
"Bans and identities"). Failed logins ban the source address; failures charged to a claimed
username only slow further checks for it from addresses it has not recently logged in from,
never refuse it from one it has, and never close its live sessions."""

from auth_util import attempt, password_file, password_moat

BANS = {"auth_failures": 3, "window": "60s", "duration": "5m", "max_duration": "1h"}


def _still_served(client):
    client.send(bytes([0xC0, 0x00]))  # PINGREQ
    return client.expect(13, timeout=5) is not None  # PINGRESP


def test_failures_from_other_addresses_do_not_lock_an_identity_out(moat_factory, tmp_path):
    pw = password_file(tmp_path, {"alice": ("alice-pass", 1000)})
    moat = password_moat(moat_factory, pw, bans=BANS)

    code, alice = attempt(moat, "127.0.0.2", "alice-live", "alice", "alice-pass", keep=True)
    assert code == 0
    try:
        # Three wrong passwords for alice, each from another address: three identity
        # failures (the old code banned alice here), no address near its own threshold.
        for i, src in enumerate(("127.0.0.3", "127.0.0.4", "127.0.0.5")):
            assert attempt(moat, src, "mallory-%d" % i, "alice", "wrong-%d" % i) == 0x86
        # A few more from one more address: only that address is banned.
        for i in range(3):
            assert attempt(moat, "127.0.0.6", "m6-%d" % i, "alice", "wrong") == 0x86
        moat.wait_audit(lambda e: e.get("event") == "ban" and e.get("remote") == "127.0.0.6",
                        message="the attacking address banned")
        assert attempt(moat, "127.0.0.6", "m6-again", "alice", "alice-pass") != 0

        # alice's live session is untouched.
        assert _still_served(alice)
        # From the address she logged in from, her password works at once (no 0x8A).
        code, again = attempt(moat, "127.0.0.2", "alice-again", "alice", "alice-pass",
                              keep=True)
        assert code == 0
        again.close()
        assert _still_served(alice)
        # No identity ban exists, and nothing was disconnected as banned.
        assert not [e for e in moat.audit_events("ban") if e.get("identity") == "alice"]
        assert not [e for e in moat.audit_events("disconnect")
                    if e.get("identity") == "alice" and "ban" in (e.get("reason") or "")]
    finally:
        alice.close()


def test_identity_under_attack_is_slowed_not_refused_from_a_new_address(moat_factory,
                                                                          tmp_path):
    pw = password_file(tmp_path, {"alice": ("alice-pass", 1000)})
    moat = password_moat(moat_factory, pw, bans=BANS, limits={"handshake_timeout": "6s"})
    for i, src in enumerate(("127.0.0.13", "127.0.0.14", "127.0.0.15", "127.0.0.16")):
        assert attempt(moat, src, "guess-%d" % i, "alice", "wrong-%d" % i) == 0x86
    # A legitimate login from an address alice never used: delayed, then accepted.
    assert attempt(moat, "127.0.0.17", "alice-new", "alice", "alice-pass") == 0
    moat.wait_audit(lambda e: e.get("event") == "rate_limited"
                    and "delayed" in (e.get("reason") or ""), message="the delay audited")
    assert moat.metric("moat_rate_limited_total", limit="identity_delay") >= 1
    # From now on that address is one alice logged in from: no delay for it.
    before = moat.metric("moat_rate_limited_total", limit="identity_delay")
    assert attempt(moat, "127.0.0.17", "alice-new-2", "alice", "alice-pass") == 0
    assert moat.metric("moat_rate_limited_total", limit="identity_delay") == before
