#pragma once
// The `topic_scan` anomaly (CONTRACT.md §5): one connection probing many distinct denied
// topics within `anomaly.window`. A per-connection kind, so it needs no view across workers:
// each worker owns one detector for the connections it serves and feeds it from its own loop
// thread. A denied-topic flood then costs the flooding connection's worker a hash and a small
// scan, and never takes a lock another worker could be waiting for.
//
// Exact sliding window over distinct topics, at most `topic_scan_distinct` hashes kept per
// connection (memory per connection is bounded whatever the client sends). Raised once when
// the count reaches the threshold, then not again for that connection until `window` has
// passed since. Pure logic with the time passed in; not thread-safe, by design.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/metrics/Anomaly.h"
#include "gateway/metrics/LruMap.h"

namespace moat::metrics {

class TopicScanDetector {
  public:
    using Clock = std::chrono::steady_clock;
    using time_point = Clock::time_point;
    static constexpr size_t kDefaultMaxTracked = 65536;

    explicit TopicScanDetector(const config::AnomalyConfig& config,
                               size_t maxTracked = kDefaultMaxTracked);

    // A topic denied to connection `connectionId` (publish, subscribe filter or will).
    std::optional<Anomaly> onDeniedTopic(uint64_t connectionId, std::string_view topic,
                                         time_point now);
    void forgetConnection(uint64_t connectionId) { scans_.erase(connectionId); }
    // Drops connections whose newest denial left the window. Call every few seconds.
    void sweep(time_point now);
    size_t size() const { return scans_.size(); }

  private:
    struct TopicScan {
        std::vector<std::pair<uint64_t, time_point>> topics;  // topic hash, last denial
        time_point lastSeen;
        std::optional<time_point> lastRaised;
    };

    const Clock::duration window_;
    const uint32_t distinct_;
    LruMap<uint64_t, TopicScan> scans_;
};

}  // namespace moat::metrics
