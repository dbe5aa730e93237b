#include "gateway/metrics/LabeledCounter.h"

namespace moat::metrics {

LabeledCounter::LabeledCounter(prometheus::Family<prometheus::Counter>& family,
                               std::string labelName, std::initializer_list<std::string_view> known)
    : family_(family), labelName_(std::move(labelName)) {
    std::lock_guard lock(insertMutex_);
    for (auto value : known) insertLocked(value);
}

prometheus::Counter* LabeledCounter::find(std::string_view value, size_t count) const {
    for (size_t i = 0; i < count; ++i) {
        if (slots_[i].value == value) return slots_[i].counter;
    }
    return nullptr;
}

prometheus::Counter& LabeledCounter::get(std::string_view value) {
    if (auto* counter = find(value, size_.load(std::memory_order_acquire))) return *counter;
    std::lock_guard lock(insertMutex_);
    return insertLocked(value);
}

prometheus::Counter& LabeledCounter::insertLocked(std::string_view value) {
    const size_t count = size_.load(std::memory_order_relaxed);
    if (auto* counter = find(value, count)) return *counter;  // raced with another inserter
    if (value.empty() || value.size() > kMaxValueBytes || count == kMaxValues) {
        if (overflow_ == nullptr) {
            overflow_ = &family_.Add({{labelName_, std::string(kOverflowValue)}});
        }
        return *overflow_;
    }
    Slot& slot = slots_[count];
    slot.value.assign(value);
    slot.counter = &family_.Add({{labelName_, slot.value}});
    size_.store(count + 1, std::memory_order_release);
    return *slot.counter;
}

}  // namespace moat::metrics
