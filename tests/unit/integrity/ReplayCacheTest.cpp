// The replay cache of integrity rules with max_age: bounded, fail-closed, fair per identity.

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "gateway/integrity/ReplayCache.h"

using namespace moat::integrity;

namespace {

std::vector<uint8_t> sig(uint32_t n, size_t size = 32) {
    std::vector<uint8_t> s(size, 0xAB);
    for (size_t i = 0; i < 4; ++i) s[i] = uint8_t(n >> (8 * i));
    return s;
}

}  // namespace

TEST_CASE("ReplayCache: a signature is fresh once until it expires") {
    ReplayCache c(16, 16);
    CHECK(c.admit(sig(1), "a", 100, 160) == ReplayCache::Result::Fresh);
    CHECK(c.admit(sig(1), "a", 150, 210) == ReplayCache::Result::Replayed);
    CHECK(c.admit(sig(1), "b", 160, 220) == ReplayCache::Result::Replayed);  // any identity
    CHECK(c.admit(sig(2), "a", 160, 220) == ReplayCache::Result::Fresh);
    CHECK(c.size() == 2);
    // After its expiry the entry is dropped (the timestamp check refuses it by then anyway).
    CHECK(c.admit(sig(3), "a", 161, 221) == ReplayCache::Result::Fresh);
    CHECK(c.size() == 2);
    CHECK(c.admit(sig(1), "a", 161, 221) == ReplayCache::Result::Fresh);
}

TEST_CASE("ReplayCache: bounded; full refuses new signatures rather than forgetting live ones") {
    ReplayCache c(8, 3);
    for (uint32_t i = 0; i < 3; ++i)
        CHECK(c.admit(sig(i), "greedy", 100, 400) == ReplayCache::Result::Fresh);
    // One identity cannot take more than its share...
    CHECK(c.admit(sig(10), "greedy", 100, 400) == ReplayCache::Result::Full);
    // ... so others still get through, until the whole cache is full.
    for (uint32_t i = 20; i < 23; ++i)
        CHECK(c.admit(sig(i), "b", 100, 400) == ReplayCache::Result::Fresh);
    CHECK(c.admit(sig(30), "c", 100, 400) == ReplayCache::Result::Fresh);
    CHECK(c.admit(sig(31), "c", 100, 400) == ReplayCache::Result::Fresh);
    CHECK(c.size() == 8);
    CHECK(c.admit(sig(40), "d", 100, 400) == ReplayCache::Result::Full);
    // Live entries were never evicted: every one of them is still a replay.
    for (uint32_t i = 0; i < 3; ++i)
        CHECK(c.admit(sig(i), "x", 200, 500) == ReplayCache::Result::Replayed);
    // Room comes back as entries expire, and the identity's share with it.
    CHECK(c.admit(sig(40), "d", 401, 700) == ReplayCache::Result::Fresh);
    CHECK(c.size() == 1);
    CHECK(c.admit(sig(10), "greedy", 401, 700) == ReplayCache::Result::Fresh);
}

TEST_CASE("ReplayCache: Ed25519-sized signatures and concurrent workers") {
    ReplayCache c(100000, 100000);
    CHECK(c.admit(sig(7, 64), "a", 0, 10) == ReplayCache::Result::Fresh);
    CHECK(c.admit(sig(7, 64), "a", 0, 10) == ReplayCache::Result::Replayed);
    // Two workers racing the same signatures: each is fresh exactly once.
    std::atomic<int> fresh{0};
    auto run = [&] {
        for (uint32_t i = 1000; i < 3000; ++i)
            if (c.admit(sig(i), "w", 0, 10) == ReplayCache::Result::Fresh) ++fresh;
    };
    std::thread t1(run), t2(run);
    t1.join();
    t2.join();
    CHECK(fresh == 2000);
}
