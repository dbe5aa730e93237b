#include <catch2/catch.hpp>

#include "gateway/net/ReloadGate.h"

using moat::net::ReloadGate;

TEST_CASE("ReloadGate: a request while idle starts a reload", "[reload]") {
    ReloadGate g;
    REQUIRE(g.request());
    REQUIRE(g.running());
    REQUIRE_FALSE(g.finish(false));  // nothing came meanwhile
    REQUIRE_FALSE(g.running());
    REQUIRE(g.request());  // and the next one starts again
}

TEST_CASE("ReloadGate: a request during a reload runs once more after it, coalesced", "[reload]") {
    ReloadGate g;
    REQUIRE(g.request());
    REQUIRE_FALSE(g.request());  // running: remembered, not started
    REQUIRE_FALSE(g.request());
    REQUIRE_FALSE(g.request());
    REQUIRE(g.pending());
    REQUIRE(g.finish(false));  // one more reload, not three
    REQUIRE(g.running());
    REQUIRE_FALSE(g.pending());
    REQUIRE_FALSE(g.request());  // a request during the second one is remembered too
    REQUIRE(g.finish(false));
    REQUIRE_FALSE(g.finish(false));
    REQUIRE_FALSE(g.running());
}

TEST_CASE("ReloadGate: no further reload while stopping", "[reload]") {
    ReloadGate g;
    REQUIRE(g.request());
    REQUIRE_FALSE(g.request());
    REQUIRE_FALSE(g.finish(true));
    REQUIRE_FALSE(g.running());
    REQUIRE_FALSE(g.pending());
}
