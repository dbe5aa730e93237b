#include <catch2/catch.hpp>
#include <cmath>

#include "gateway/inspect/limits/TokenBucket.h"

using namespace std::chrono_literals;
using moat::inspect::SteadyTime;
using moat::inspect::TokenBucket;

namespace {
// A fake clock far from the epoch, so that "now - window" stays meaningful.
const SteadyTime t0 = SteadyTime{} + 1000h;
}  // namespace

TEST_CASE("token bucket starts full with one second worth of burst", "[token_bucket]") {
    TokenBucket b(10);
    CHECK(b.burst() == 10);
    for (int i = 0; i < 10; ++i) CHECK(b.tryTake(1, t0));
    CHECK_FALSE(b.tryTake(1, t0));
}

TEST_CASE("token bucket refills at its rate and never beyond the burst", "[token_bucket]") {
    TokenBucket b(10, 3);
    for (int i = 0; i < 3; ++i) REQUIRE(b.tryTake(1, t0));
    REQUIRE_FALSE(b.tryTake(1, t0));
    CHECK_FALSE(b.tryTake(1, t0 + 99ms));
    CHECK(b.tryTake(1, t0 + 100ms));
    CHECK_FALSE(b.tryTake(1, t0 + 100ms));
    // A long idle period refills to the burst, not to rate × idle time.
    CHECK(b.available(t0 + 1h) == Approx(3));
    for (int i = 0; i < 3; ++i) CHECK(b.tryTake(1, t0 + 1h));
    CHECK_FALSE(b.tryTake(1, t0 + 1h));
}

TEST_CASE("token bucket takes fractional and multi-token amounts", "[token_bucket]") {
    TokenBucket bytes(1000);  // e.g. bytes per second
    CHECK(bytes.tryTake(600, t0));
    CHECK_FALSE(bytes.tryTake(600, t0));  // a failed take takes nothing
    CHECK(bytes.available(t0) == Approx(400));
    CHECK(bytes.tryTake(400, t0));
    CHECK(bytes.tryTake(0.5, t0 + 1ms));
}

TEST_CASE("timeUntil is exact enough to schedule a resume", "[token_bucket]") {
    for (double rate : {0.3, 1.0, 7.0, 100.0, 1e6, 1048576.0}) {
        for (double n : {0.25, 1.0, 3.0, 1000.0}) {
            TokenBucket b(rate);
            SteadyTime now = t0;
            b.consume(b.burst(), now);  // empty it
            const auto wait = b.timeUntil(n, now);
            CHECK(wait > 0ns);
            if (wait > 1us) {
                TokenBucket early = b;
                CHECK_FALSE(early.tryTake(n, now + wait - 1us));
            }
            CHECK(b.tryTake(n, now + wait));
        }
    }
}

TEST_CASE("timeUntil is zero when tokens are there", "[token_bucket]") {
    TokenBucket b(5);
    CHECK(b.timeUntil(5, t0) == 0ns);
    REQUIRE(b.tryTake(5, t0));
    const auto wait = b.timeUntil(1, t0);
    CHECK(wait >= 200ms);
    CHECK(wait < 201ms);
}

TEST_CASE("a request larger than the burst passes from a full bucket and leaves a debt",
          "[token_bucket]") {
    TokenBucket b(10);  // burst 10
    CHECK(b.tryTake(25, t0));
    CHECK(b.available(t0) == Approx(-15));
    CHECK_FALSE(b.tryTake(25, t0 + 2s));  // needs a full bucket first: -15 + 20 = 5
    const auto wait = b.timeUntil(25, t0 + 2s);
    CHECK(wait >= 500ms);
    CHECK(wait < 501ms);
    CHECK(b.tryTake(25, t0 + 2s + wait));
}

TEST_CASE("a rate below one per second still lets one through per period", "[token_bucket]") {
    TokenBucket b(0.5);  // 30/m: burst is half a token
    CHECK(b.tryTake(1, t0));
    CHECK_FALSE(b.tryTake(1, t0 + 1s));
    CHECK(b.tryTake(1, t0 + 2s + 1ms));
}

TEST_CASE("unlimited bucket", "[token_bucket]") {
    TokenBucket dflt;
    TokenBucket zero(0);
    TokenBucket negative(-5);
    for (TokenBucket* b : {&dflt, &zero, &negative}) {
        CHECK(b->unlimited());
        for (int i = 0; i < 1000; ++i) CHECK(b->tryTake(1e9, t0));
        CHECK(b->timeUntil(1e12, t0) == 0ns);
        CHECK(std::isinf(b->available(t0)));
        CHECK(b->full(t0));
    }
}

TEST_CASE("a clock that goes backwards mints no tokens", "[token_bucket]") {
    TokenBucket b(10);
    REQUIRE(b.tryTake(10, t0 + 10s));
    CHECK_FALSE(b.tryTake(1, t0));
    CHECK_FALSE(b.tryTake(1, t0 + 10s));
    CHECK(b.tryTake(1, t0 + 10s + 100ms));
}

TEST_CASE("consume goes into debt and full() reports a refilled bucket", "[token_bucket]") {
    TokenBucket b(100);
    CHECK(b.full(t0));
    b.consume(300, t0);
    CHECK_FALSE(b.full(t0));
    CHECK(b.available(t0) == Approx(-200));
    CHECK_FALSE(b.tryTake(1, t0 + 2s));
    CHECK(b.tryTake(1, t0 + 2s + 10ms + 1ns));
    CHECK(b.full(t0 + 10s));
}

TEST_CASE("reconfigure keeps the level clamped to the new burst", "[token_bucket]") {
    TokenBucket b(100);
    REQUIRE(b.tryTake(50, t0));  // 50 left
    b.reconfigure(10);
    CHECK(b.burst() == 10);
    CHECK(b.available(t0) == Approx(10));

    b.reconfigure(0);
    CHECK(b.unlimited());
    b.reconfigure(4);  // from unlimited: starts full
    for (int i = 0; i < 4; ++i) CHECK(b.tryTake(1, t0));
    CHECK_FALSE(b.tryTake(1, t0));
}
