#pragma once
// Per-client publish-spike detection (anomaly kind `publish_spike`). One object lives in each
// connection's state, so memory is bounded by the connection table and nothing needs forgetting.
//
// Time is cut into fixed buckets of kBucket. When a bucket closes, its publish count feeds an
// exponentially weighted moving average: the client's own baseline. After kWarmupBuckets buckets
// of history, a bucket whose count passes spikeFactor × max(baseline, 1) — and at least
// kMinSpikePublishes, so a quiet sensor that sends a handful of messages is not an incident —
// raises one anomaly. The episode must end (a bucket closing below the threshold) before the
// next one is raised. Pure logic, injected clock, not thread-safe.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "gateway/metrics/Anomaly.h"

namespace moat::metrics {

class PublishBaseline {
  public:
    using Clock = std::chrono::steady_clock;
    using time_point = Clock::time_point;
    static constexpr Clock::duration kBucket = std::chrono::seconds(10);
    static constexpr uint32_t kWarmupBuckets = 6;
    static constexpr double kAlpha = 0.2;  // weight of the newest bucket in the baseline
    static constexpr uint32_t kMinSpikePublishes = 20;

    PublishBaseline(double spikeFactor, time_point now);

    // One PUBLISH from this client. `subject` names it in the anomaly ("client=…").
    std::optional<Anomaly> onPublish(std::string_view subject, time_point now);

    double baseline() const { return baseline_; }  // publishes per bucket
    bool warmedUp() const { return buckets_ >= kWarmupBuckets; }

  private:
    void advance(time_point now);
    double threshold() const;

    double spikeFactor_;
    time_point bucketStart_;
    uint32_t current_ = 0;
    uint32_t buckets_ = 0;  // closed buckets seen (saturates at kWarmupBuckets)
    double baseline_ = 0;
    bool inSpike_ = false;
};

}  // namespace moat::metrics
