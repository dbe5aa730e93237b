#pragma once
// Audit summarising for deliveries withheld on a denied branch (CONTRACT §3 "Subscriptions
// and denied branches"). A client subscribed to `#` over a busy denied branch would otherwise
// write one audit event per broker message and crowd the audit log's global rate limit, so
// per connection the first withheld delivery of each second is audited and the rest are
// folded into the next event's `count` (or the final one at disconnect). Metrics still count
// every one. Pure, with the time passed in.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::inspect {

class WithheldDeliveries {
  public:
    static constexpr uint64_t kWindowMs = 1000;

    // One withheld delivery at `nowMs`: the count to audit now (this one plus those folded
    // since the last event), or nullopt when it is folded into a later event.
    std::optional<uint64_t> record(uint64_t nowMs, std::string_view topic, std::string_view rule) {
        if (started_ && nowMs < windowEnd_) {
            ++folded_;
            lastTopic_.assign(topic);
            lastRule_.assign(rule);
            return std::nullopt;
        }
        started_ = true;
        windowEnd_ = nowMs + kWindowMs;
        const uint64_t count = folded_ + 1;
        folded_ = 0;
        return count;
    }

    // At disconnect: deliveries folded and not yet audited (0: none), with the last one's
    // topic and rule.
    uint64_t pending() const { return folded_; }
    const std::string& lastTopic() const { return lastTopic_; }
    const std::string& lastRule() const { return lastRule_; }

  private:
    bool started_ = false;
    uint64_t windowEnd_ = 0;
    uint64_t folded_ = 0;
    std::string lastTopic_, lastRule_;
};

}  // namespace moat::inspect
