#include <catch2/catch.hpp>

#include "gateway/inspect/WithheldDeliveries.h"

using moat::inspect::WithheldDeliveries;

TEST_CASE("withheld deliveries are audited once per second with a count") {
    WithheldDeliveries w;
    CHECK(w.record(1000, "t/a", "r") == 1u);  // the first is audited at once
    for (int i = 0; i < 500; ++i) CHECK_FALSE(w.record(1000 + i, "t/b", "r2"));
    CHECK(w.pending() == 500u);
    CHECK(w.lastTopic() == "t/b");
    CHECK(w.record(2000, "t/c", "r") == 501u);  // the folded ones ride on the next event
    CHECK(w.pending() == 0u);
    CHECK(w.record(5000, "t/c", "r") == 1u);
}
