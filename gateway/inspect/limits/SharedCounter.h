#pragma once
// A connection count shared by all workers, for the global `max_connections` limit.
// Lock-free; acquire() never lets the count pass the limit, even under contention.

#include <atomic>
#include <cstdint>

namespace moat::inspect {

class SharedCounter {
  public:
    // Takes one slot if fewer than `max` are taken. max == 0 means unlimited.
    bool tryAcquire(uint32_t max) {
        uint32_t current = count_.load(std::memory_order_relaxed);
        do {
            if (max != 0 && current >= max) return false;
        } while (!count_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
        return true;
    }
    void release() { count_.fetch_sub(1, std::memory_order_relaxed); }
    uint32_t value() const { return count_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint32_t> count_{0};
};

}  // namespace moat::inspect
