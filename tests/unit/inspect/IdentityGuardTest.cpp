// CONTRACT §3 "Bans and identities": failures charged to an identity slow further checks for
// it from addresses it has not recently logged in from; never from one it has.

#include <catch2/catch.hpp>
#include <string>

#include "gateway/inspect/limits/IdentityGuard.h"

using namespace std::chrono_literals;
using moat::inspect::IdentityGuard;
using moat::inspect::IdentityGuardConfig;
using moat::inspect::SteadyTime;

namespace {

const SteadyTime t0 = SteadyTime{} + 1000h;

IdentityGuardConfig cfg(uint32_t threshold = 3) {
    IdentityGuardConfig c;
    c.threshold = threshold;
    c.window = 60s;
    c.baseDelay = 500ms;
    c.maxDelay = 4s;
    c.trustFor = 24h;
    return c;
}

// `n` failed checks for `identity`, each from its own address, one second apart.
void failFromMany(IdentityGuard& g, std::string_view identity, int n, SteadyTime start) {
    for (int i = 0; i < n; ++i)
        g.chargeCheck(identity, "10.0.0." + std::to_string(i + 1), start + i * 1s);
}

}  // namespace

TEST_CASE("below the threshold nothing is delayed", "[identity]") {
    IdentityGuard g(cfg());
    failFromMany(g, "alice", 2, t0);
    CHECK(g.delayFor("alice", "192.0.2.1", t0 + 3s) == 0ms);
}

TEST_CASE("failures from many addresses delay checks from an unknown address", "[identity]") {
    IdentityGuard g(cfg());
    failFromMany(g, "alice", 3, t0);
    CHECK(g.delayFor("alice", "192.0.2.1", t0 + 3s) == 500ms);
    failFromMany(g, "alice", 2, t0 + 3s);  // 5 failures: 2 past the threshold
    CHECK(g.delayFor("alice", "192.0.2.1", t0 + 5s) == 2s);
    failFromMany(g, "alice", 20, t0 + 5s);
    CHECK(g.delayFor("alice", "192.0.2.1", t0 + 25s) == 4s);  // capped at maxDelay
    // Another identity is not affected.
    CHECK(g.delayFor("bob", "192.0.2.1", t0 + 25s) == 0ms);
}

TEST_CASE("an address the identity logged in from is never delayed", "[identity]") {
    IdentityGuard g(cfg());
    g.loggedIn("alice", "192.0.2.7", t0);
    failFromMany(g, "alice", 30, t0 + 1s);
    CHECK(g.trusted("alice", "192.0.2.7", t0 + 31s));
    CHECK(g.delayFor("alice", "192.0.2.7", t0 + 31s) == 0ms);
    IdentityGuard::Charge c = g.chargeCheck("alice", "192.0.2.7", t0 + 32s);
    CHECK(c.delay == 0ms);
    // The trust is per identity: the same address is a stranger for bob.
    failFromMany(g, "bob", 3, t0);
    CHECK(g.delayFor("bob", "192.0.2.7", t0 + 4s) > 0ms);
}

TEST_CASE("trust expires and is refreshed by every login", "[identity]") {
    IdentityGuard g(cfg());
    g.loggedIn("alice", "192.0.2.7", t0);
    g.loggedIn("alice", "192.0.2.7", t0 + 20h);
    CHECK(g.trusted("alice", "192.0.2.7", t0 + 30h));
    CHECK_FALSE(g.trusted("alice", "192.0.2.7", t0 + 45h));
    g.sweep(t0 + 45h);
    CHECK(g.trackedIdentities() == 0);
}

TEST_CASE("a check that succeeds is withdrawn; failures leave the window", "[identity]") {
    IdentityGuard g(cfg());
    failFromMany(g, "alice", 2, t0);
    IdentityGuard::Charge c = g.chargeCheck("alice", "192.0.2.9", t0 + 10s);
    REQUIRE(c.charged);
    CHECK(g.failuresInWindow("alice", t0 + 10s) == 3);
    g.withdraw("alice", c.chargedAt);
    CHECK(g.failuresInWindow("alice", t0 + 10s) == 2);
    CHECK(g.failuresInWindow("alice", t0 + 60500ms) == 1);
    CHECK(g.failuresInWindow("alice", t0 + 62s) == 0);
}

TEST_CASE("the charge's delay comes from the failures before it", "[identity]") {
    IdentityGuard g(cfg());
    failFromMany(g, "alice", 2, t0);
    CHECK(g.chargeCheck("alice", "192.0.2.9", t0 + 3s).delay == 0ms);
    CHECK(g.chargeCheck("alice", "192.0.2.9", t0 + 4s).delay == 500ms);
}

TEST_CASE("cluster pressure counts as the threshold reached", "[identity]") {
    IdentityGuard g(cfg());
    g.notePressure("alice", t0);
    CHECK(g.delayFor("alice", "192.0.2.1", t0 + 1s) == 500ms);
}

TEST_CASE("threshold 0 never delays; untrackable identities are not charged", "[identity]") {
    IdentityGuard off(cfg(0));
    failFromMany(off, "alice", 10, t0);
    CHECK(off.delayFor("alice", "192.0.2.1", t0 + 10s) == 0ms);

    IdentityGuard g(cfg());
    CHECK_FALSE(g.chargeCheck("", "192.0.2.1", t0).charged);
    CHECK_FALSE(g.chargeCheck(std::string(5000, 'x'), "192.0.2.1", t0).charged);
}

TEST_CASE("memory stays bounded under a flood of usernames", "[identity]") {
    IdentityGuardConfig c = cfg();
    c.maxIdentities = 100;
    IdentityGuard g(c);
    for (int i = 0; i < 1000; ++i) g.chargeCheck("u" + std::to_string(i), "10.0.0.1", t0);
    CHECK(g.trackedIdentities() <= 100);
    // Trusted logins keep their own table: the flood does not make alice a stranger.
    g.loggedIn("alice", "192.0.2.7", t0);
    CHECK(g.trusted("alice", "192.0.2.7", t0 + 1s));
    // At most kMaxTrustedAddresses per identity, least recently used forgotten.
    for (int i = 0; i < 20; ++i)
        g.loggedIn("alice", "198.51.100." + std::to_string(i), t0 + (i + 1) * 1s);
    CHECK_FALSE(g.trusted("alice", "192.0.2.7", t0 + 30s));
    CHECK(g.trusted("alice", "198.51.100.19", t0 + 30s));
}
