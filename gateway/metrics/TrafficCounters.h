#pragma once
// Per-worker traffic counters (moat_packets_total, moat_bytes_total), read at scrape time.
//
// Each worker owns one TrafficCounters and is its only writer; a scrape (another thread) reads
// every worker's counters and sums them (TrafficCollector). The counters are relaxed atomics
// updated with load + store, not a read-modify-write: on the single writer that compiles to a
// plain add (no lock prefix, no shared cache line with other workers), while a concurrent
// reader still sees a whole, monotonic value. So a scrape shows every packet counted before
// it, with no flush timer and no shared atomics on the data path.

#include <array>
#include <atomic>
#include <cstdint>

namespace moat::metrics {

// A counter with exactly one writing thread and any number of readers.
class RelaxedCounter {
  public:
    RelaxedCounter& operator+=(uint64_t n) {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
        return *this;
    }
    RelaxedCounter& operator++() { return *this += 1; }
    void operator++(int) { *this += 1; }
    uint64_t load() const { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> value_{0};
};

struct TrafficCounters {
    std::array<RelaxedCounter, 16> packetsIn{};   // client -> broker, by packet type
    std::array<RelaxedCounter, 16> packetsOut{};  // broker -> client
    RelaxedCounter bytesIn, bytesOut;
};

}  // namespace moat::metrics
