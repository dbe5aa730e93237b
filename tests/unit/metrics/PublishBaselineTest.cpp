// publish_spike: a client's own baseline (EWMA over 10 s buckets), on a fake clock.

#include <catch2/catch.hpp>

#include "gateway/metrics/PublishBaseline.h"

using moat::metrics::PublishBaseline;
using namespace std::chrono_literals;

namespace {

// `count` publishes spread over one bucket starting at `start`; returns anomalies raised.
int bucketOf(PublishBaseline& b, PublishBaseline::time_point start, int count) {
    int raised = 0;
    for (int i = 0; i < count; ++i)
        if (b.onPublish("client=c1", start + i * (PublishBaseline::kBucket / (count + 1))))
            ++raised;
    return raised;
}

}  // namespace

TEST_CASE("no anomaly before the baseline is warmed up, however fast the client starts") {
    PublishBaseline::time_point t0{};
    PublishBaseline b(10.0, t0);
    CHECK(bucketOf(b, t0, 500) == 0);
    CHECK_FALSE(b.warmedUp());
}

TEST_CASE("a spike above factor x baseline raises one anomaly per episode") {
    PublishBaseline::time_point t{};
    PublishBaseline b(10.0, t);
    for (uint32_t i = 0; i < PublishBaseline::kWarmupBuckets; ++i, t += PublishBaseline::kBucket)
        CHECK(bucketOf(b, t, 5) == 0);
    // The last warm-up bucket closes with the first publish of the next one.
    // 10 x 5 = 50 publishes in one bucket: one anomaly, not one per publish above it.
    CHECK(bucketOf(b, t, 80) == 1);
    CHECK(b.warmedUp());
    CHECK(b.baseline() == Approx(5.0));
    t += PublishBaseline::kBucket;
    // Still spiking in the next bucket: the episode has not ended, nothing new.
    CHECK(bucketOf(b, t, 200) == 0);
    t += PublishBaseline::kBucket;
    CHECK(bucketOf(b, t, 1) == 0);  // a quiet bucket closes the episode
    t += PublishBaseline::kBucket;
    CHECK(bucketOf(b, t, 2000) == 1);  // a new episode raises again
}

TEST_CASE("a quiet sensor needs at least kMinSpikePublishes in a bucket") {
    PublishBaseline::time_point t{};
    PublishBaseline b(2.0, t);
    for (uint32_t i = 0; i < PublishBaseline::kWarmupBuckets; ++i, t += PublishBaseline::kBucket)
        bucketOf(b, t, 1);
    // 2 x baseline(1) = 2, but a handful of messages is no incident.
    CHECK(bucketOf(b, t, PublishBaseline::kMinSpikePublishes - 1) == 0);
}

TEST_CASE("long silences decay the baseline instead of freezing it") {
    PublishBaseline::time_point t{};
    PublishBaseline b(10.0, t);
    for (uint32_t i = 0; i < PublishBaseline::kWarmupBuckets; ++i, t += PublishBaseline::kBucket)
        bucketOf(b, t, 100);
    double busy = b.baseline();
    t += 100 * PublishBaseline::kBucket;
    b.onPublish("client=c1", t);
    CHECK(b.baseline() < busy / 1000);
}

TEST_CASE("a factor of 0 turns detection off") {
    PublishBaseline::time_point t{};
    PublishBaseline b(0.0, t);
    for (uint32_t i = 0; i < PublishBaseline::kWarmupBuckets; ++i, t += PublishBaseline::kBucket)
        bucketOf(b, t, 1);
    CHECK(bucketOf(b, t, 10000) == 0);
}
