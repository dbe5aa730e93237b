#include <catch2/catch.hpp>

#include "gateway/cluster/Backoff.h"

using moat::cluster::withJitter;

TEST_CASE("reconnect jitter stays within +-20 % in both directions") {
    for (uint64_t ms : {200u, 400u, 5000u}) {
        for (int pct = -20; pct <= 20; ++pct) {
            const uint64_t d = withJitter(ms, pct);
            CHECK(d >= ms * 80 / 100);
            CHECK(d <= ms * 120 / 100);
        }
    }
    CHECK(withJitter(200, -20) == 160);  // the case that used to wrap to ~1.8e17 ms
    CHECK(withJitter(5000, 20) == 6000);
    CHECK(withJitter(0, -20) == 0);
}
