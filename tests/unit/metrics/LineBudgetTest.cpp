#include <catch2/catch.hpp>
#include <chrono>
#include <vector>

#include "gateway/metrics/LineBudget.h"

using moat::metrics::LineBudget;

TEST_CASE("the text log budget is per call site and reports what it cut") {
    LineBudget budget(3);
    static const char siteA[] = "anomaly %s";
    static const char siteB[] = "reload %s";
    auto t = LineBudget::Clock::time_point(std::chrono::hours(1));
    std::vector<LineBudget::Suppressed> ended;
    int admittedA = 0;
    for (int i = 0; i < 100; ++i) admittedA += budget.admit(siteA, t, ended);
    CHECK(admittedA == 3);
    // Another site is not crowded out by the noisy one.
    CHECK(budget.admit(siteB, t, ended));
    CHECK(ended.empty());
    // The next window reports the cut lines once, and the site has its budget again.
    t += std::chrono::seconds(1);
    CHECK(budget.admit(siteA, t, ended));
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].site == siteA);
    CHECK(ended[0].count == 97);
    ended.clear();
    t += std::chrono::seconds(1);
    CHECK(budget.admit(siteB, t, ended));
    CHECK(ended.empty());  // siteA cut nothing in its last window
}

TEST_CASE("a text log budget of 0 is unlimited") {
    LineBudget budget(0);
    std::vector<LineBudget::Suppressed> ended;
    const auto t = LineBudget::Clock::time_point(std::chrono::hours(1));
    for (int i = 0; i < 1000; ++i) CHECK(budget.admit("x", t, ended));
}
