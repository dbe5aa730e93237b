#include <catch2/catch.hpp>

#include "gateway/inspect/OwnershipTable.h"

using moat::inspect::OwnershipTable;
using namespace std::chrono_literals;

namespace {
const OwnershipTable::TimePoint t0{};
constexpr uint32_t kNever = OwnershipTable::kNeverExpires;
}  // namespace

TEST_CASE("ownership: another identity is refused while the owner is connected") {
    OwnershipTable t(7 * 24h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    auto c = t.claim("cid", "dev2", t0 + 1s);
    CHECK_FALSE(c.granted);
    CHECK(c.owner == "dev1");
    // The owner is untouched by the refusal.
    auto o = t.owner("cid", t0 + 2s);
    REQUIRE(o);
    CHECK(o->identity == "dev1");
    CHECK(o->connections == 1);
}

TEST_CASE("ownership: the same identity takes its own session over") {
    OwnershipTable t(7 * 24h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    REQUIRE(t.claim("cid", "dev1", t0 + 1s).granted);  // the broker kicks the first one
    t.release("cid", "dev1", kNever, t0 + 2s);         // the kicked one ends
    CHECK(t.owner("cid", t0 + 3s)->connections == 1);  // still connected through the second
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 3s).granted);
}

TEST_CASE("ownership: a v3 persistent session is held for session_owner_ttl") {
    OwnershipTable t(1h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    t.release("cid", "dev1", kNever, t0 + 10s);
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 10s + 59min).granted);
    CHECK(t.claim("cid", "dev2", t0 + 10s + 1h).granted);  // expired: dev2 owns it now
    CHECK(t.owner("cid", t0 + 2h)->identity == "dev2");
}

TEST_CASE("ownership: a clean session (expiry 0) frees the id when it ends") {
    OwnershipTable t(7 * 24h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    t.release("cid", "dev1", 0, t0 + 5s);
    CHECK(t.size() == 0);
    CHECK(t.claim("cid", "dev2", t0 + 5s).granted);
}

TEST_CASE("ownership: a v5 Session Expiry shorter than the TTL bounds the hold") {
    OwnershipTable t(7 * 24h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    // The caller passes the expiry as last set (a DISCONNECT may have changed the CONNECT's).
    t.release("cid", "dev1", 30, t0);
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 29s).granted);
    CHECK(t.claim("cid", "dev2", t0 + 30s).granted);
}

TEST_CASE("ownership: a v5 Session Expiry longer than the TTL is held for the TTL") {
    OwnershipTable t(1min);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    t.release("cid", "dev1", 3600, t0);
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 59s).granted);
    CHECK(t.claim("cid", "dev2", t0 + 60s).granted);
}

TEST_CASE("ownership: a reload changing the TTL applies to ids already held") {
    OwnershipTable t(1h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    t.release("cid", "dev1", kNever, t0);
    t.setTtl(10min);
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 9min).granted);
    CHECK(t.claim("cid", "dev2", t0 + 10min).granted);
    // And a longer TTL lengthens holds that have not ended yet.
    REQUIRE(t.claim("x", "dev1", t0).granted);
    t.release("x", "dev1", kNever, t0);
    t.setTtl(2h);
    CHECK_FALSE(t.claim("x", "dev2", t0 + 90min).granted);
}

TEST_CASE("ownership: the owner reconnects to its held session") {
    OwnershipTable t(1h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    t.release("cid", "dev1", kNever, t0);
    REQUIRE(t.claim("cid", "dev1", t0 + 30min).granted);
    t.release("cid", "dev1", kNever, t0 + 50min);
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 100min).granted);  // hold restarted at 50 min
}

TEST_CASE("ownership: a connection the broker never accepted keeps the prior hold") {
    OwnershipTable t(1h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    t.release("cid", "dev1", kNever, t0);
    REQUIRE(t.claim("cid", "dev1", t0 + 10min).granted);
    t.release("cid", "dev1", std::nullopt, t0 + 11min);  // e.g. broker unreachable
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 59min).granted);
    CHECK(t.claim("cid", "dev2", t0 + 60min).granted);
    // A fresh claim that never reached the broker holds nothing.
    REQUIRE(t.claim("y", "dev1", t0).granted);
    t.release("y", "dev1", std::nullopt, t0 + 1s);
    CHECK(t.claim("y", "dev2", t0 + 1s).granted);
}

TEST_CASE("ownership: operator release, list and expiry") {
    OwnershipTable t(1h);
    REQUIRE(t.claim("a", "dev1", t0).granted);
    REQUIRE(t.claim("b", "dev2", t0).granted);
    t.release("b", "dev2", kNever, t0);
    auto owners = t.list(t0 + 1min);
    REQUIRE(owners.size() == 2);
    CHECK(owners[0].clientId == "a");
    CHECK(owners[0].connections == 1);
    CHECK(owners[1].identity == "dev2");
    CHECK(owners[1].remaining == 59min);
    CHECK(t.forceRelease("b"));
    CHECK_FALSE(t.forceRelease("b"));
    CHECK(t.claim("b", "dev3", t0 + 1min).granted);
    // A release by a connection whose claim the operator dropped changes nothing.
    CHECK(t.forceRelease("a"));
    REQUIRE(t.claim("a", "dev9", t0 + 2min).granted);
    t.release("a", "dev1", kNever, t0 + 3min);
    CHECK(t.owner("a", t0 + 3min)->identity == "dev9");
    t.release("b", "dev3", 60, t0 + 1min);
    CHECK(t.expire(t0 + 3min) == 1);
}

TEST_CASE("ownership: owners adopted from another replica") {
    OwnershipTable t(1h);
    t.adopt("cid", "dev1", 10min, t0);
    CHECK_FALSE(t.claim("cid", "dev2", t0 + 9min).granted);
    CHECK(t.claim("cid", "dev1", t0 + 9min).granted);  // its own id, here
    // A remote hold never outlasts the local TTL, and a remote release drops it.
    t.adopt("x", "dev1", 48h, t0);
    CHECK(t.owner("x", t0)->remaining == 1h);
    t.adopt("x", "dev1", 0ms, t0);
    CHECK_FALSE(t.owner("x", t0));
    // A local connected holder wins over a remote claim.
    REQUIRE(t.claim("y", "dev1", t0).granted);
    t.adopt("y", "dev2", 1h, t0);
    CHECK(t.owner("y", t0)->identity == "dev1");
    CHECK(t.shareableHold("y", t0) == 1h);
}

TEST_CASE("ownership: the table is bounded; connected holders are never evicted") {
    OwnershipTable t(1h, 2);
    REQUIRE(t.claim("a", "dev1", t0).granted);
    REQUIRE(t.claim("b", "dev2", t0).granted);
    t.release("b", "dev2", 60, t0);
    REQUIRE(t.claim("c", "dev3", t0).granted);  // evicts b, the released one
    CHECK(t.size() == 2);
    CHECK(t.owner("a", t0));
    CHECK_FALSE(t.owner("b", t0));
}

TEST_CASE("ownership: a stored session's subscriptions go to its owner's next claim") {
    OwnershipTable t(1h);
    REQUIRE(t.claim("cid", "dev1", t0).granted);
    CHECK(t.claim("cid", "dev1", t0).subscriptions.empty());
    t.release("cid", "dev1", kNever, t0, {"a/#"});  // the second connection is still there
    t.release("cid", "dev1", kNever, t0 + 1s, {"a/#", "b"});
    auto c = t.claim("cid", "dev1", t0 + 2s);
    REQUIRE(c.granted);
    CHECK(c.subscriptions == std::vector<std::string>{"a/#", "b"});
    // A connection the broker never accepted keeps them for the next one.
    t.release("cid", "dev1", std::nullopt, t0 + 3s);
    CHECK(t.claim("cid", "dev1", t0 + 4s).subscriptions.size() == 2);
    t.release("cid", "dev1", kNever, t0 + 5s, {"c"});
    // Another identity after the hold ends starts from nothing.
    REQUIRE(t.claim("cid", "dev2", t0 + 5s + 1h).granted);
    t.release("cid", "dev2", kNever, t0 + 5s + 1h, {});
    CHECK(t.claim("cid", "dev2", t0 + 5s + 1h).subscriptions.empty());
}
