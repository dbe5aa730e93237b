#pragma once
// Anomaly detection per source address and per claimed identity (CONTRACT.md §5): repeated
// failed logins per IP or identity (`auth_failures`) and connection storms from one IP
// (`connection_storm`). Per-connection kinds live with the connection's worker:
// `topic_scan` in TopicScanDetector (one per worker), `publish_spike` in PublishBaseline (one
// per connection).
//
// Pure logic: the caller passes `now`, so tests drive it with a fake clock. NOT thread-safe,
// by design: the gateway's main loop owns the one detector and feeds it the events every
// worker queued for it (AddressAnomalies), because SO_REUSEPORT spreads one address's
// connections over all workers and a per-worker count would miss a storm spread thin.
//
// Counting: per key, a sliding-window estimate over `window` built from two fixed buckets (the
// previous bucket weighted by its overlap with the window, as rate limiters do), so a burst that
// straddles a bucket boundary is still seen, in O(1) memory per key. An anomaly is raised once
// when the estimate reaches the threshold, then not again for that key until `window` has passed
// since it was raised. Tables are LRU-bounded (`maxTracked` entries each); sweep() drops idle keys.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/config/Config.h"
#include "gateway/metrics/Anomaly.h"
#include "gateway/metrics/LruMap.h"

namespace moat::metrics {

class AnomalyDetector {
  public:
    using Clock = std::chrono::steady_clock;
    using time_point = Clock::time_point;
    static constexpr size_t kDefaultMaxTracked = 65536;

    explicit AnomalyDetector(const config::AnomalyConfig& config,
                             size_t maxTracked = kDefaultMaxTracked);

    // A failed authentication from `ip` for `identity` ("" when unknown: only the IP counts).
    // When the IP and the identity cross their threshold on the same failure, one anomaly is
    // returned with subject "ip=…,identity=…".
    std::optional<Anomaly> onAuthFailure(std::string_view ip, std::string_view identity,
                                         time_point now);
    // A new TCP connection from `ip`.
    std::optional<Anomaly> onConnection(std::string_view ip, time_point now);

    // Drops state that can no longer contribute to an anomaly. Call every few seconds.
    void sweep(time_point now);

    struct Sizes {
        size_t authIps, authIdentities, connectionIps;
    };
    Sizes sizes() const;

  private:
    struct WindowCount {
        time_point bucketStart;
        time_point lastSeen;
        uint32_t previous = 0;
        uint32_t current = 0;
        std::optional<time_point> lastRaised;
    };
    using CountTable = LruMap<std::string, WindowCount>;

    // The count estimate when the threshold is reached and may be raised, else nullopt.
    std::optional<uint64_t> hit(CountTable& table, std::string_view key, uint32_t threshold,
                                time_point now) const;
    bool idle(time_point lastSeen, time_point now) const { return now - lastSeen >= 2 * window_; }

    const Clock::duration window_;
    const uint32_t authFailures_;
    const uint32_t connectionStorm_;
    CountTable authByIp_;
    CountTable authByIdentity_;
    CountTable connectionsByIp_;
};

}  // namespace moat::metrics
