#include "gateway/metrics/PublishBaseline.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace moat::metrics {

PublishBaseline::PublishBaseline(double spikeFactor, time_point now)
    : spikeFactor_(spikeFactor), bucketStart_(now) {}

double PublishBaseline::threshold() const {
    return std::max(spikeFactor_ * std::max(baseline_, 1.0),
                    static_cast<double>(kMinSpikePublishes));
}

void PublishBaseline::advance(time_point now) {
    if (now - bucketStart_ < kBucket) return;
    const auto closed = static_cast<uint64_t>((now - bucketStart_) / kBucket);
    // The bucket that just closed, then (closed - 1) silent buckets.
    if (inSpike_ && current_ < threshold()) inSpike_ = false;
    baseline_ = buckets_ == 0 ? current_ : kAlpha * current_ + (1 - kAlpha) * baseline_;
    if (closed > 1) {
        baseline_ *=
            std::pow(1 - kAlpha, static_cast<double>(std::min<uint64_t>(closed - 1, 1000)));
        inSpike_ = false;
    }
    buckets_ = static_cast<uint32_t>(std::min<uint64_t>(buckets_ + closed, kWarmupBuckets));
    bucketStart_ += closed * kBucket;
    current_ = 0;
}

std::optional<Anomaly> PublishBaseline::onPublish(std::string_view subject, time_point now) {
    advance(now);
    if (current_ < UINT32_MAX) ++current_;
    if (spikeFactor_ <= 0 || !warmedUp() || inSpike_) return std::nullopt;
    if (current_ < threshold()) return std::nullopt;
    inSpike_ = true;
    return Anomaly{"publish_spike", std::string(subject), current_};
}

}  // namespace moat::metrics
