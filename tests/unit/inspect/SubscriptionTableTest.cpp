#include <catch2/catch.hpp>

#include "gateway/inspect/SubscriptionTable.h"

using moat::inspect::SubscriptionTable;

TEST_CASE("subscription table: counted when sent, undone only by the broker's refusal") {
    SubscriptionTable t;
    t.subscribeSent(1, {"a", "b"});
    CHECK(t.size() == 2);
    CHECK(t.idInUse(1));
    CHECK(t.pendingFilters() == 2);
    CHECK(t.subackReceived(1, {0, 0x80}));
    CHECK(!t.idInUse(1));
    CHECK(t.pendingFilters() == 0);
    CHECK(t.contains("a"));
    CHECK(!t.contains("b"));
    CHECK(!t.subackReceived(1, {0}));  // answered already
}

TEST_CASE("subscription table: a refusal keeps a filter another SUBSCRIBE still requests") {
    SubscriptionTable t;
    t.subscribeSent(1, {"a"});
    t.subscribeSent(2, {"a"});
    CHECK(t.size() == 1);
    CHECK(t.subackReceived(1, {0x80}));
    CHECK(t.contains("a"));          // id 2 may yet be granted
    CHECK(t.subackReceived(2, {}));  // no code: refused; id 1 added it, id 2 did not
    CHECK(t.contains("a"));          // conservative: counted until unsubscribed
}

TEST_CASE("subscription table: unsubscribe and revoke act at once, later SUBACKs do not undo") {
    SubscriptionTable t;
    t.subscribeSent(1, {"a", "b"});
    t.unsubscribeSent(2, {"a"});
    CHECK(t.idInUse(2));
    CHECK(!t.contains("a"));
    auto revoked = t.revoke([](const std::string& f) { return f != "b"; });
    CHECK(revoked == std::vector<std::string>{"b"});
    CHECK(t.size() == 0);
    // The same name subscribed again before the old SUBACK: the old answer leaves it alone.
    t.subscribeSent(3, {"b"});
    CHECK(t.subackReceived(1, {0x80, 0x80}));
    CHECK(t.contains("b"));
    CHECK(t.unsubackReceived(2));
    CHECK(!t.unsubackReceived(2));
}
