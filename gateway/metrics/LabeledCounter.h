#pragma once
// A counter family with one free-form label (`reason`, `limit`, `kind`, `action`) whose values
// are discovered at run time. The hot path is lock-free: values seen before are found by a scan
// of an append-only table published with release/acquire; only the first use of a new value
// takes a mutex. The table is bounded so a bug (or hostile input leaking into a label) cannot
// explode the series count: past the cap, values are counted under `other`.

#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

namespace moat::metrics {

class LabeledCounter {
  public:
    static constexpr size_t kMaxValues = 64;
    static constexpr size_t kMaxValueBytes = 64;
    static constexpr std::string_view kOverflowValue = "other";

    // `known` values are created up front so they show up as 0 before their first event
    // (alerts on absent series are brittle).
    LabeledCounter(prometheus::Family<prometheus::Counter>& family, std::string labelName,
                   std::initializer_list<std::string_view> known);
    LabeledCounter(const LabeledCounter&) = delete;
    LabeledCounter& operator=(const LabeledCounter&) = delete;

    prometheus::Counter& get(std::string_view value);
    void increment(std::string_view value) { get(value).Increment(); }

  private:
    struct Slot {
        std::string value;
        prometheus::Counter* counter = nullptr;
    };
    prometheus::Counter* find(std::string_view value, size_t count) const;
    prometheus::Counter& insertLocked(std::string_view value);

    prometheus::Family<prometheus::Counter>& family_;
    std::string labelName_;
    std::array<Slot, kMaxValues> slots_;  // slots_[0, size_) are immutable once published
    std::atomic<size_t> size_{0};
    std::mutex insertMutex_;
    prometheus::Counter* overflow_ = nullptr;
};

}  // namespace moat::metrics
