#include <catch2/catch.hpp>

#include "gateway/inspect/DecisionCache.h"

using moat::inspect::DecisionCache;
using moat::policy::Decision;

TEST_CASE("DecisionCache runs the check only for a new topic") {
    DecisionCache cache;
    int checks = 0;
    auto allow = [&] {
        ++checks;
        Decision d;
        d.allowed = true;
        return d;
    };
    auto deny = [&] {
        ++checks;
        return Decision::defaultDeny();
    };
    CHECK(cache.get("a/b", allow).allowed);
    CHECK(cache.get("a/b", deny).allowed);  // cached: the check does not run
    CHECK(checks == 1);
    CHECK_FALSE(cache.get("a/c", deny).allowed);
    CHECK_FALSE(cache.get("a/c", allow).allowed);
    CHECK(checks == 2);
    CHECK(cache.get("a/b", allow).allowed);  // one entry: a/b was evicted by a/c
    CHECK(checks == 3);
    cache.clear();  // new rights
    CHECK_FALSE(cache.get("a/b", deny).allowed);
    CHECK(checks == 4);
    CHECK_FALSE(cache.get("", deny).allowed);  // the empty topic is a topic like any other
    CHECK(cache.get("", allow).allowed == false);
    CHECK(checks == 5);
}
