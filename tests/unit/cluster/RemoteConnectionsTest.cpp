#include <catch2/catch.hpp>
#include <string>

#include "gateway/cluster/RemoteConnections.h"

using namespace moat::cluster;

TEST_CASE("remote counts sum per IP over replicas and follow updates", "[remote]") {
    RemoteConnections r;
    CHECK(r.set("a", "192.0.2.1", 2, 0));
    CHECK(r.set("b", "192.0.2.1", 3, 0));
    CHECK(r.sumFor("192.0.2.1") == 5);
    CHECK(r.total() == 5);
    CHECK(r.set("a", "192.0.2.1", 0, 1));
    CHECK(r.sumFor("192.0.2.1") == 3);
    r.forget("b");
    CHECK(r.sumFor("192.0.2.1") == 0);
    CHECK(r.total() == 0);
    CHECK(r.entries() == 0);
}

TEST_CASE("remote sums never wrap", "[remote]") {
    RemoteLimits lim;
    lim.maxPerEntry = UINT32_MAX;
    RemoteConnections r(lim);
    CHECK(r.set("a", "192.0.2.1", UINT32_MAX, 0));
    CHECK(r.set("b", "192.0.2.1", 2, 0));  // would wrap a uint32 sum to 1
    CHECK(r.sumFor("192.0.2.1") == UINT32_MAX);
    // And the default cap holds one replica's claim to something plausible.
    RemoteConnections d;
    d.set("a", "192.0.2.1", UINT32_MAX, 0);
    CHECK(d.sumFor("192.0.2.1") == RemoteLimits{}.maxPerEntry);
}

TEST_CASE("remote tables are bounded: replicas and entries", "[remote]") {
    RemoteLimits lim;
    lim.maxReplicas = 3;
    lim.maxEntries = 100;
    RemoteConnections r(lim);
    for (int i = 0; i < 10; ++i) r.touch("r" + std::to_string(i), 0);
    CHECK(r.replicas() == 3);
    for (int i = 0; i < 100000; ++i) r.set("r0", "10.0." + std::to_string(i), 1, 0);
    CHECK(r.entries() == 100);
    CHECK(r.total() == 100);
    CHECK(r.refused() > 0);
    // Forgetting a replica frees its room.
    r.forget("r0");
    CHECK(r.entries() == 0);
    CHECK(r.set("r9", "192.0.2.1", 1, 0));
}

TEST_CASE("replace swaps a replica's table; silent replicas are reported", "[remote]") {
    RemoteConnections r;
    r.set("a", "192.0.2.1", 1, 0);
    r.set("a", "192.0.2.2", 1, 0);
    r.replace("a", {{"192.0.2.2", 4}, {"192.0.2.3", 1}}, 5000);
    CHECK(r.sumFor("192.0.2.1") == 0);
    CHECK(r.sumFor("192.0.2.2") == 4);
    CHECK(r.total() == 5);
    r.touch("b", 14000);
    auto s = r.silent(16000, 10000);
    REQUIRE(s.size() == 1);
    CHECK(s[0] == "a");
}
