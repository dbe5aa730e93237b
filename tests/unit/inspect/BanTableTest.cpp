#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "gateway/inspect/limits/BanTable.h"

using namespace std::chrono_literals;
using moat::config::BansConfig;
using moat::inspect::Ban;
using moat::inspect::BanDecision;
using moat::inspect::BanTable;
using moat::inspect::BanTableLimits;
using moat::inspect::SharedBanTable;
using moat::inspect::SteadyTime;

namespace {

const SteadyTime t0 = SteadyTime{} + 1000h;

BansConfig bans(uint32_t failures = 5, std::chrono::milliseconds window = 60s,
                std::chrono::milliseconds duration = 5min,
                std::chrono::milliseconds maxDuration = 1h) {
    BansConfig c;
    c.authFailures = failures;
    c.window = window;
    c.duration = duration;
    c.maxDuration = maxDuration;
    return c;
}

// Records `n` failures one second apart starting at `start`; returns the last decision.
BanDecision fail(BanTable& t, int n, SteadyTime start, std::string_view ip,
                 std::string_view identity = "") {
    BanDecision last;
    for (int i = 0; i < n; ++i) last = t.recordAuthFailure(ip, identity, start + i * 1s);
    return last;
}

}  // namespace

TEST_CASE("auth_failures within the window ban the IP", "[bans]") {
    BanTable t(bans());
    for (int i = 0; i < 4; ++i) CHECK_FALSE(t.recordAuthFailure("192.0.2.1", "", t0 + i * 1s));
    CHECK_FALSE(t.isIpBanned("192.0.2.1", t0 + 4s));
    BanDecision d = t.recordAuthFailure("192.0.2.1", "", t0 + 4s);
    REQUIRE(d.ip);
    CHECK_FALSE(d.identity);
    CHECK(d.ip->kind == Ban::Ip);
    CHECK(d.ip->subject == "192.0.2.1");
    CHECK(d.ip->duration == 5min);
    CHECK(d.ip->until == t0 + 4s + 5min);
    CHECK(t.isIpBanned("192.0.2.1", t0 + 5s));
    CHECK_FALSE(t.isIpBanned("192.0.2.2", t0 + 5s));
    CHECK(t.activeBans(t0 + 5s) == 1);
    auto active = t.activeBan(Ban::Ip, "192.0.2.1", t0 + 5s);
    REQUIRE(active);
    CHECK(active->until == d.ip->until);
    CHECK(active->duration == 5min);
}

TEST_CASE("failures older than the window do not count", "[bans]") {
    BanTable t(bans());
    fail(t, 4, t0, "192.0.2.1");  // t0 .. t0+3s
    CHECK_FALSE(t.recordAuthFailure("192.0.2.1", "", t0 + 3s + 61s));
    CHECK_FALSE(t.isIpBanned("192.0.2.1", t0 + 65s));

    // Sliding window: 0, 20, 40, 50 then 70 leaves four within 60 s, 75 makes five.
    BanTable s(bans());
    for (auto at : {0s, 20s, 40s, 50s, 70s}) CHECK_FALSE(s.recordAuthFailure("a", "", t0 + at));
    CHECK(s.recordAuthFailure("a", "", t0 + 75s));
}

TEST_CASE("a failure exactly one window after the first is outside it", "[bans]") {
    BanTable t(bans(2, 10s));
    CHECK_FALSE(t.recordAuthFailure("a", "", t0));
    CHECK_FALSE(t.recordAuthFailure("a", "", t0 + 10s));
    CHECK(t.recordAuthFailure("a", "", t0 + 19s));
}

TEST_CASE("bans expire", "[bans]") {
    BanTable t(bans());
    BanDecision d = fail(t, 5, t0, "192.0.2.1");
    REQUIRE(d.ip);
    CHECK(t.isIpBanned("192.0.2.1", d.ip->until - 1ms));
    CHECK_FALSE(t.isIpBanned("192.0.2.1", d.ip->until));
    CHECK(t.activeBans(d.ip->until) == 0);
    CHECK_FALSE(t.activeBan(Ban::Ip, "192.0.2.1", d.ip->until));
}

TEST_CASE("repeat bans double up to max_duration", "[bans]") {
    BanTable t(bans(3, 60s, 5min, 1h));
    SteadyTime now = t0;
    std::vector<std::chrono::milliseconds> durations;
    for (int round = 0; round < 7; ++round) {
        BanDecision d = fail(t, 3, now, "192.0.2.1");
        REQUIRE(d.ip);
        durations.push_back(d.ip->duration);
        now = d.ip->until + 1s;
    }
    std::vector<std::chrono::milliseconds> expected{5min, 10min, 20min, 40min, 1h, 1h, 1h};
    CHECK(durations == expected);
}

TEST_CASE("the repeat count is forgotten long after the last ban", "[bans]") {
    BanTable t(bans(3, 60s, 5min, 1h));
    BanDecision first = fail(t, 3, t0, "192.0.2.1");
    REQUIRE(first.ip);
    BanDecision second = fail(t, 3, first.ip->until + 1s, "192.0.2.1");
    REQUIRE(second.ip);
    CHECK(second.ip->duration == 10min);
    // Memory is max(24 h, 4 × max_duration) = 24 h after the end of the ban.
    t.sweep(second.ip->until + 23h);
    BanDecision third = fail(t, 3, second.ip->until + 23h, "192.0.2.1");
    REQUIRE(third.ip);
    CHECK(third.ip->duration == 20min);
    t.sweep(third.ip->until + 25h);
    CHECK(t.trackedSubjects() == 0);
    BanDecision fresh = fail(t, 3, third.ip->until + 25h, "192.0.2.1");
    REQUIRE(fresh.ip);
    CHECK(fresh.ip->duration == 5min);
}

TEST_CASE("a duration above max_duration is used as is, never shortened", "[bans]") {
    BanTable t(bans(1, 60s, 2h, 1h));
    BanDecision d = t.recordAuthFailure("a", "", t0);
    REQUIRE(d.ip);
    CHECK(d.ip->duration == 2h);
}

TEST_CASE("failures for one identity from many IPs ban the identity", "[bans]") {
    BanTable t(bans());
    BanDecision d;
    for (int i = 0; i < 5; ++i) {
        d = t.recordAuthFailure("198.51.100." + std::to_string(i), "bob", t0 + i * 1s);
    }
    REQUIRE(d.identity);
    CHECK_FALSE(d.ip);
    CHECK(d.identity->kind == Ban::Identity);
    CHECK(d.identity->subject == "bob");
    CHECK(t.isIdentityBanned("bob", t0 + 10s));
    CHECK_FALSE(t.isIdentityBanned("alice", t0 + 10s));
    CHECK_FALSE(t.isIpBanned("198.51.100.0", t0 + 10s));
    // An identity is not an IP and vice versa.
    CHECK_FALSE(t.isIpBanned("bob", t0 + 10s));
}

TEST_CASE("one failure can ban the IP and the identity together", "[bans]") {
    BanTable t(bans(2));
    t.recordAuthFailure("192.0.2.1", "bob", t0);
    BanDecision d = t.recordAuthFailure("192.0.2.1", "bob", t0 + 1s);
    REQUIRE(d.ip);
    REQUIRE(d.identity);
    CHECK(t.activeBans(t0 + 2s) == 2);
}

TEST_CASE("failures while banned do not extend the ban", "[bans]") {
    BanTable t(bans(2));
    BanDecision d = fail(t, 2, t0, "192.0.2.1");
    REQUIRE(d.ip);
    for (int i = 0; i < 10; ++i) CHECK_FALSE(t.recordAuthFailure("192.0.2.1", "", t0 + 10s));
    CHECK_FALSE(t.isIpBanned("192.0.2.1", d.ip->until));
}

TEST_CASE("auth_failures 0 disables banning", "[bans]") {
    BanTable t(bans(0));
    CHECK_FALSE(fail(t, 100, t0, "192.0.2.1", "bob"));
    CHECK(t.trackedSubjects() == 0);
}

TEST_CASE("updateConfig changes the threshold for later failures", "[bans]") {
    BanTable t(bans(5));
    fail(t, 2, t0, "a");
    t.updateConfig(bans(3, 60s, 1min));
    BanDecision d = t.recordAuthFailure("a", "", t0 + 3s);
    REQUIRE(d.ip);
    CHECK(d.ip->duration == 1min);
}

TEST_CASE("sweep keeps what still matters and drops the rest", "[bans]") {
    BanTable t(bans(3));
    fail(t, 1, t0, "one-failure");
    fail(t, 3, t0, "banned");
    CHECK(t.trackedSubjects() == 2);
    t.sweep(t0 + 2min);  // the single failure left the window; the ban is active
    CHECK(t.trackedSubjects() == 1);
    t.sweep(t0 + 10min);  // ban over, strike remembered
    CHECK(t.trackedSubjects() == 1);
    t.sweep(t0 + 10min + 25h);
    CHECK(t.trackedSubjects() == 0);
}

TEST_CASE("memory is bounded: many sources", "[bans]") {
    BanTableLimits lim;
    lim.maxSubjects = 100;
    BanTable t(bans(5), lim);
    for (int i = 0; i < 5000; ++i) {
        t.recordAuthFailure("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256),
                            "user" + std::to_string(i), t0 + i * 1ms);
        REQUIRE(t.trackedSubjects() <= 200);
    }
    CHECK(t.untrackedFailures() == 0);
}

TEST_CASE("a table full of active bans drops the ban that ends soonest for a newcomer", "[bans]") {
    BanTableLimits lim;
    lim.maxSubjects = 50;
    BanTable t(bans(1), lim);
    // ip0 ends soonest (banned first, same duration).
    for (int i = 0; i < 50; ++i)
        REQUIRE(t.recordAuthFailure("ip" + std::to_string(i), "", t0 + i * 1ms).ip);
    // Refusing the newcomer would fail open: whoever fills the table stops all banning.
    CHECK(t.recordAuthFailure("newcomer", "", t0 + 1s).ip);
    CHECK(t.isIpBanned("newcomer", t0 + 2s));
    CHECK(t.untrackedFailures() == 0);
    CHECK(t.evictedBans() == 1);
    CHECK_FALSE(t.isIpBanned("ip0", t0 + 2s));
    for (int i = 1; i < 50; ++i) CHECK(t.isIpBanned("ip" + std::to_string(i), t0 + 2s));
    CHECK(t.activeBans(t0 + 2s) == 50);
    CHECK(t.trackedSubjects() == 50);
}

TEST_CASE("a full table evicts by expiry: long adopted bans outlive short ones", "[bans]") {
    BanTableLimits lim;
    lim.maxSubjects = 10;
    BanTable t(bans(1, 60s, 5min, 1h), lim);
    for (int i = 0; i < 9; ++i)
        REQUIRE(t.adopt(Ban::Ip, "long" + std::to_string(i), 1h, t0 + 1h, t0));
    REQUIRE(t.recordAuthFailure("short", "", t0).ip);  // 5 min
    REQUIRE(t.recordAuthFailure("next", "", t0 + 1s).ip);
    CHECK_FALSE(t.isIpBanned("short", t0 + 2s));
    for (int i = 0; i < 9; ++i) CHECK(t.isIpBanned("long" + std::to_string(i), t0 + 2s));
}

TEST_CASE("a flood of bans into a full table stays cheap and bounded", "[bans]") {
    BanTableLimits lim;
    lim.maxSubjects = 1000;
    BanTable t(bans(1), lim);
    for (int i = 0; i < 200000; ++i)
        t.adopt(Ban::Ip, "10." + std::to_string(i), 1h, t0 + 1h + i * 1ms, t0);
    CHECK(t.trackedSubjects() == 1000);
    CHECK(t.activeBans(t0) == 1000);
    CHECK(t.evictedBans() == 199000);
    // A real attacker is still banned.
    CHECK(t.recordAuthFailure("198.51.100.7", "", t0 + 1s).ip);
    CHECK(t.isIpBanned("198.51.100.7", t0 + 2s));
}

TEST_CASE("active ban count follows expiry, extension and eviction", "[bans]") {
    BanTableLimits lim;
    lim.maxSubjects = 3;
    BanTable t(bans(1, 60s, 5min, 1h), lim);
    REQUIRE(t.recordAuthFailure("a", "", t0).ip);           // ends t0 + 5 min
    REQUIRE(t.adopt(Ban::Ip, "b", 10min, t0 + 10min, t0));  // ends t0 + 10 min
    REQUIRE(t.adopt(Ban::Identity, "c", 1min, t0 + 1min, t0));
    CHECK(t.activeBans(t0) == 3);
    CHECK(t.activeBans(t0 + 1min) == 2);                           // c ended
    REQUIRE(t.adopt(Ban::Ip, "a", 20min, t0 + 20min, t0 + 2min));  // extended
    CHECK(t.activeBans(t0 + 6min) == 2);
    CHECK(t.activeBans(t0 + 11min) == 1);
    CHECK(t.activeBans(t0 + 21min) == 0);
    t.sweep(t0 + 48h);
    CHECK(t.trackedSubjects() == 0);
    CHECK(t.activeBans(t0 + 48h) == 0);
}

TEST_CASE("adopted bans are clamped to the policy and marked as adopted", "[bans]") {
    BanTable t(bans(5, 60s, 5min, 1h));
    REQUIRE(t.adopt(Ban::Ip, "192.0.2.1", 366 * 24h, t0 + 366 * 24h, t0));
    auto b = t.activeBan(Ban::Ip, "192.0.2.1", t0);
    REQUIRE(b);
    CHECK(b->until == t0 + 1h);
    CHECK(b->duration == 1h);
    CHECK(t.isIpBanned("192.0.2.1", t0 + 59min));
    CHECK_FALSE(t.isIpBanned("192.0.2.1", t0 + 1h));
    // A local ban is not adopted; an adopted one is (activeBanList tells them apart).
    fail(t, 5, t0, "192.0.2.2");
    size_t adopted = 0, local = 0;
    for (const Ban& x : t.activeBanList(t0 + 10s)) (x.adopted ? adopted : local)++;
    CHECK(adopted == 1);
    CHECK(local == 1);
    // duration above max_duration: the longer of the two is the cap.
    BanTable u(bans(5, 60s, 2h, 1h));
    REQUIRE(u.adopt(Ban::Ip, "192.0.2.3", 10h, t0 + 10h, t0));
    CHECK(u.activeBan(Ban::Ip, "192.0.2.3", t0)->until == t0 + 2h);
}

TEST_CASE("memory is bounded: long identities", "[bans]") {
    BanTableLimits lim;
    lim.maxKeyBytes = 64 * 1024;
    lim.maxSubjectLength = 1024;
    BanTable t(bans(5), lim);
    for (int i = 0; i < 1000; ++i) {
        std::string identity(1000, 'x');
        identity += std::to_string(i);
        t.recordAuthFailure("192.0.2.1", identity, t0 + i * 1ms);
    }
    CHECK(t.trackedSubjects() <= 1 + 64);
    // Too long to track at all: only the IP side counts it.
    BanTable u(bans(1), lim);
    BanDecision d = u.recordAuthFailure("192.0.2.9", std::string(5000, 'y'), t0);
    CHECK(d.ip);
    CHECK_FALSE(d.identity);
}

TEST_CASE("SharedBanTable serialises concurrent callers", "[bans]") {
    SharedBanTable t(bans(10));
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&t, w] {
            for (int i = 0; i < 500; ++i) {
                t.recordAuthFailure("10.0.0." + std::to_string(i % 50), "w" + std::to_string(w),
                                    t0);
                (void)t.isIpBanned("10.0.0.1", t0);
            }
        });
    }
    for (auto& th : threads) th.join();
    // 40 failures per IP (>= 10: banned), 500 per identity (banned).
    for (int i = 0; i < 50; ++i) CHECK(t.isIpBanned("10.0.0." + std::to_string(i), t0));
    for (int w = 0; w < 4; ++w) CHECK(t.isIdentityBanned("w" + std::to_string(w), t0));
    CHECK(t.activeBans(t0) == 54);
}

TEST_CASE("SharedBanTable answers without a ban as before, and sees a ban at once", "[bans]") {
    SharedBanTable t(bans(2, 60s, 5min));
    CHECK(t.latestBanEndForTest() == SteadyTime{});
    CHECK_FALSE(t.isIpBanned("192.0.2.1", t0));
    CHECK_FALSE(t.activeBan(Ban::Ip, "192.0.2.1", t0));
    t.recordAuthFailure("192.0.2.1", "", t0);
    CHECK_FALSE(t.isIpBanned("192.0.2.1", t0));  // one failure: no ban, still the fast path
    CHECK(t.latestBanEndForTest() == SteadyTime{});
    auto d = t.recordAuthFailure("192.0.2.1", "", t0 + 1s);
    REQUIRE(d.ip);
    // The ban is visible to the very next check (any thread), and only for its subject.
    CHECK(t.latestBanEndForTest() == t0 + 1s + 5min);
    CHECK(t.isIpBanned("192.0.2.1", t0 + 2s));
    CHECK_FALSE(t.isIpBanned("192.0.2.2", t0 + 2s));
    CHECK(t.activeBan(Ban::Ip, "192.0.2.1", t0 + 2s));
    // Ended: the fast path answers again.
    CHECK_FALSE(t.isIpBanned("192.0.2.1", t0 + 1s + 5min));
}

TEST_CASE("SharedBanTable: imposed and adopted bans end the fast path too", "[bans]") {
    SharedBanTable t(bans(5, 60s, 5min, 1h));
    REQUIRE(t.impose(Ban::Identity, "mallory", t0));
    CHECK(t.isIdentityBanned("mallory", t0 + 1s));
    CHECK_FALSE(t.isIdentityBanned("alice", t0 + 1s));
    // Adopted from another replica, ending later than every local ban.
    REQUIRE(t.adopt(Ban::Ip, "198.51.100.9", 30min, t0 + 30min, t0));
    CHECK(t.latestBanEndForTest() == t0 + 30min);
    CHECK(t.isIpBanned("198.51.100.9", t0 + 20min));
    CHECK_FALSE(t.isIdentityBanned("mallory", t0 + 20min));  // its 5 min are over
    t.sweep(t0 + 2h);
    CHECK_FALSE(t.isIpBanned("198.51.100.9", t0 + 2h));
}

TEST_CASE("SharedBanTable: a ban made on one thread holds on the others", "[bans]") {
    // Workers checking while another worker's failures ban the address: once the banning
    // call returned, every later check on every thread refuses it.
    SharedBanTable t(bans(3));
    std::atomic<bool> banned{false};
    std::atomic<int> missed{0};
    std::vector<std::thread> checkers;
    for (int w = 0; w < 3; ++w) {
        checkers.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                const bool known = banned.load(std::memory_order_acquire);
                if (known && !t.isIpBanned("203.0.113.1", t0 + 10s)) ++missed;
                (void)t.isIpBanned("203.0.113.2", t0 + 10s);
            }
        });
    }
    for (int i = 0; i < 3; ++i) t.recordAuthFailure("203.0.113.1", "", t0 + i * 1s);
    banned.store(true, std::memory_order_release);
    for (auto& th : checkers) th.join();
    CHECK(missed == 0);
    CHECK(t.isIpBanned("203.0.113.1", t0 + 10s));
    CHECK_FALSE(t.isIpBanned("203.0.113.2", t0 + 10s));
}
