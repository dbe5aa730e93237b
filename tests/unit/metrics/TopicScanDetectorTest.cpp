#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "gateway/metrics/TopicScanDetector.h"

using moat::metrics::TopicScanDetector;
using namespace std::chrono_literals;

namespace {

moat::config::AnomalyConfig config(uint32_t distinct, std::chrono::milliseconds window = 60s) {
    moat::config::AnomalyConfig c;
    c.topicScanDistinct = distinct;
    c.window = window;
    return c;
}

const TopicScanDetector::time_point t0{std::chrono::hours(1)};

}  // namespace

TEST_CASE("topic scans count distinct denied topics per connection") {
    TopicScanDetector d(config(3));
    CHECK_FALSE(d.onDeniedTopic(7, "a", t0));
    CHECK_FALSE(d.onDeniedTopic(7, "a", t0));  // a repeat is not scanning
    CHECK_FALSE(d.onDeniedTopic(7, "b", t0));
    CHECK_FALSE(d.onDeniedTopic(8, "c", t0));  // another connection
    auto a = d.onDeniedTopic(7, "c", t0);
    REQUIRE(a);
    CHECK(a->kind == "topic_scan");
    CHECK(a->subject == "connection=7");
    CHECK(a->count == 3);
    d.forgetConnection(7);
    CHECK(d.size() == 1);
}

TEST_CASE("the topic-scan window slides: old denials drop out") {
    TopicScanDetector d(config(3, 60s));
    CHECK_FALSE(d.onDeniedTopic(1, "a", t0));
    CHECK_FALSE(d.onDeniedTopic(1, "b", t0 + 30s));
    // "a" left the window: "c" makes two distinct topics, not three.
    CHECK_FALSE(d.onDeniedTopic(1, "c", t0 + 61s));
    auto a = d.onDeniedTopic(1, "d", t0 + 62s);
    REQUIRE(a);  // b, c, d within 60 s
    CHECK(a->count == 3);
}

TEST_CASE("a scan is raised once per window, then again while it goes on") {
    TopicScanDetector d(config(2, 60s));
    CHECK_FALSE(d.onDeniedTopic(1, "a", t0));
    CHECK(d.onDeniedTopic(1, "b", t0 + 1s));
    CHECK_FALSE(d.onDeniedTopic(1, "c", t0 + 2s));   // already raised in this window
    CHECK_FALSE(d.onDeniedTopic(1, "d", t0 + 60s));  // 59 s after the raise
    CHECK(d.onDeniedTopic(1, "e", t0 + 61s));        // still scanning a window later
}

TEST_CASE("topic-scan memory per connection is bounded by the threshold") {
    TopicScanDetector d(config(5));
    int raised = 0;
    for (int i = 0; i < 10000; ++i)
        if (d.onDeniedTopic(1, "t/" + std::to_string(i), t0 + std::chrono::milliseconds(i)))
            ++raised;
    CHECK(raised == 1);
    CHECK(d.size() == 1);
}

TEST_CASE("topic-scan state is bounded across connections and swept") {
    TopicScanDetector d(config(100), 16);
    for (uint64_t c = 0; c < 1000; ++c) d.onDeniedTopic(c, "x", t0);
    CHECK(d.size() <= 16);
    d.sweep(t0 + 59s);
    CHECK(d.size() == 16);  // still within the window
    d.sweep(t0 + 60s);
    CHECK(d.size() == 0);
}

TEST_CASE("topic_scan_distinct 0 disables the detection") {
    TopicScanDetector d(config(0));
    for (int i = 0; i < 10; ++i) CHECK_FALSE(d.onDeniedTopic(1, "t" + std::to_string(i), t0));
    CHECK(d.size() == 0);
}
