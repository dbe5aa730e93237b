#pragma once
// The prometheus-cpp Collectable behind moat_packets_total and moat_bytes_total: sums the
// per-worker TrafficCounters at scrape time (see TrafficCounters.h for why).
//
// Workers attach their counters at start and detach them when they go; what a detached
// worker counted is kept, so the counters never go backwards. attach/detach/Collect take a
// mutex: they run at start-up, shutdown and scrape, never per packet.

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

#include "gateway/metrics/TrafficCounters.h"

namespace moat::metrics {

class TrafficCollector : public prometheus::Collectable {
  public:
    void attach(const TrafficCounters* counters);
    // Folds what `counters` counted into the retired totals and forgets the pointer.
    void detach(const TrafficCounters* counters);

    // Counters not owned by a worker (tests, the rare off-loop caller); shared, so callers
    // on the data path use their own TrafficCounters instead.
    void add(bool clientToBroker, uint8_t packetType, uint64_t packets, uint64_t bytes);

    std::vector<prometheus::MetricFamily> Collect() const override;

  private:
    struct Totals {
        std::array<std::array<uint64_t, 16>, 2> packets{};  // [direction][type]
        std::array<uint64_t, 2> bytes{};
    };
    static void accumulate(Totals& into, const TrafficCounters& c);

    mutable std::mutex mutex_;
    std::vector<const TrafficCounters*> live_;
    Totals retired_;
};

}  // namespace moat::metrics
