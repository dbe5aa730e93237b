#include "gateway/metrics/TopicScanDetector.h"

#include <algorithm>
#include <functional>
#include <string>

namespace moat::metrics {

TopicScanDetector::TopicScanDetector(const config::AnomalyConfig& config, size_t maxTracked)
    : window_(std::max<Clock::duration>(config.window, std::chrono::milliseconds(1))),
      distinct_(config.topicScanDistinct),
      scans_(maxTracked) {}

std::optional<Anomaly> TopicScanDetector::onDeniedTopic(uint64_t connectionId,
                                                        std::string_view topic, time_point now) {
    if (distinct_ == 0) return std::nullopt;  // detection disabled
    TopicScan& scan = scans_.touch(connectionId, [] { return TopicScan{}; });
    scan.lastSeen = now;
    auto& topics = scan.topics;
    std::erase_if(topics, [&](const auto& t) { return now - t.second >= window_; });
    const uint64_t hash = std::hash<std::string_view>{}(topic);
    auto it = std::find_if(topics.begin(), topics.end(),
                           [hash](const auto& t) { return t.first == hash; });
    if (it != topics.end()) {
        it->second = now;
        return std::nullopt;  // a repeated topic is not scanning
    }
    if (topics.size() < distinct_) {
        topics.emplace_back(hash, now);
    } else {
        *std::min_element(topics.begin(), topics.end(), [](const auto& a, const auto& b) {
            return a.second < b.second;
        }) = {hash, now};
    }
    if (topics.size() < distinct_) return std::nullopt;
    if (scan.lastRaised && now - *scan.lastRaised < window_) return std::nullopt;
    scan.lastRaised = now;
    return Anomaly{"topic_scan", "connection=" + std::to_string(connectionId), topics.size()};
}

void TopicScanDetector::sweep(time_point now) {
    // A connection's scan state is dead once its newest denial left the window and the last
    // raise no longer suppresses anything.
    scans_.evictWhile([&](const TopicScan& s) { return now - s.lastSeen >= window_; });
}

}  // namespace moat::metrics
