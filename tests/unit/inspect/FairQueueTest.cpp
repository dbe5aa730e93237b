// The password-check wait queue: bounded, round-robin across addresses, iterative.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gateway/inspect/limits/FairQueue.h"

using moat::inspect::FairQueue;

namespace {
std::vector<std::string> drainOrder(FairQueue<int>& q) {
    std::vector<std::string> out;
    while (auto next = q.pop()) out.push_back(next->first + ":" + std::to_string(next->second));
    return out;
}
}  // namespace

TEST_CASE("one address is first come first served", "[fairqueue]") {
    FairQueue<int> q(10);
    for (int i = 0; i < 3; ++i) CHECK(q.push("a", int(i)).queued);
    CHECK(drainOrder(q) == std::vector<std::string>{"a:0", "a:1", "a:2"});
    CHECK(q.empty());
}

TEST_CASE("service is round-robin across addresses", "[fairqueue]") {
    FairQueue<int> q(100);
    for (int i = 0; i < 4; ++i) q.push("flood", int(i));
    q.push("quiet", 100);
    // The quiet address waits for one flood job, not four.
    CHECK(drainOrder(q) ==
          std::vector<std::string>{"flood:0", "quiet:100", "flood:1", "flood:2", "flood:3"});
}

TEST_CASE("a full queue refuses, or evicts from the longest address", "[fairqueue]") {
    FairQueue<int> q(4);
    for (int i = 0; i < 4; ++i) REQUIRE(q.push("flood", int(i)).queued);
    // A newcomer from a quiet address takes the place of the flood's newest job.
    int quiet = 7;
    auto p = q.push("quiet", std::move(quiet));
    CHECK(p.queued);
    REQUIRE(p.evicted);
    CHECK(*p.evicted == 3);
    CHECK(q.size() == 4);
    CHECK(q.queuedFor("flood") == 3);
    // The flooding address itself is refused (the job is left to the caller).
    int more = 9;
    auto r = q.push("flood", std::move(more));
    CHECK_FALSE(r.queued);
    CHECK_FALSE(r.evicted);
    CHECK(more == 9);
}

TEST_CASE("addresses with one job each are not evicted by newcomers", "[fairqueue]") {
    FairQueue<int> q(3);
    q.push("a", 1);
    q.push("b", 2);
    q.push("c", 3);
    auto p = q.push("d", 4);
    CHECK_FALSE(p.queued);
    CHECK(q.size() == 3);
}

TEST_CASE("remove takes out one queued job; the ring stays consistent", "[fairqueue]") {
    FairQueue<int> q(10);
    q.push("a", 1);
    q.push("b", 2);
    q.push("a", 3);
    auto gone = q.remove("b", [](int j) { return j == 2; });
    REQUIRE(gone);
    CHECK(*gone == 2);
    CHECK_FALSE(q.remove("b", [](int) { return true; }));
    q.push("b", 4);  // b re-enters the ring once, not twice
    CHECK(drainOrder(q) == std::vector<std::string>{"a:1", "b:4", "a:3"});
}

TEST_CASE("a long queue is drained without recursion", "[fairqueue]") {
    // Finding 19.3: the old hand-over recursed once per waiter.
    FairQueue<int> q(300000);
    for (int i = 0; i < 200000; ++i) q.push("a" + std::to_string(i % 1000), int(i));
    size_t n = 0;
    while (q.pop()) ++n;
    CHECK(n == 200000);
}
