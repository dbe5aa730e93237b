#pragma once
// A per-call-site budget for the text log. The audit log has its own fair budget; the text log
// had none, and some of its lines are triggered by clients (an anomaly per claimed username,
// an unusable integrity key per CONNECT): a flood of them would fill stderr, which the audit
// log shares by default, and stall the thread writing them. Each call site (its format string)
// gets `perSecond` lines per one-second window; past that its lines are counted, and the
// count is reported once the window is over, so an operator's own lines (reload errors,
// listener failures) are never crowded out by a noisy site.
// Not thread-safe: the caller holds a lock.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moat::metrics {

class LineBudget {
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr size_t kMaxSites = 128;  // call sites are compile-time literals

    struct Suppressed {
        const void* site;
        uint64_t count;
    };

    explicit LineBudget(uint32_t perSecond) : perSecond_(perSecond) {}

    // May the line of `site` be written now? `ended` receives the sites whose window is over
    // with lines suppressed in it (to report before this line).
    bool admit(const void* site, Clock::time_point now, std::vector<Suppressed>& ended) {
        Site* mine = nullptr;
        for (auto& s : sites_) {
            if (now - s.windowStart >= std::chrono::seconds(1)) {
                if (s.dropped > 0) ended.push_back({s.site, s.dropped});
                s.windowStart = now;
                s.count = 0;
                s.dropped = 0;
            }
            if (s.site == site) mine = &s;
        }
        if (mine == nullptr) {
            // Past kMaxSites (never expected), the extra sites share one entry.
            if (sites_.size() >= kMaxSites) return admitShared(now, ended);
            sites_.push_back(Site{site, now, 0, 0});
            mine = &sites_.back();
        }
        if (perSecond_ != 0 && mine->count >= perSecond_) {
            ++mine->dropped;
            return false;
        }
        ++mine->count;
        return true;
    }

  private:
    struct Site {
        const void* site;
        Clock::time_point windowStart;
        uint32_t count;
        uint64_t dropped;
    };

    bool admitShared(Clock::time_point now, std::vector<Suppressed>& ended) {
        if (now - shared_.windowStart >= std::chrono::seconds(1)) {
            if (shared_.dropped > 0) ended.push_back({nullptr, shared_.dropped});
            shared_ = Site{nullptr, now, 0, 0};
        }
        if (perSecond_ != 0 && shared_.count >= perSecond_) {
            ++shared_.dropped;
            return false;
        }
        ++shared_.count;
        return true;
    }

    const uint32_t perSecond_;
    std::vector<Site> sites_;
    Site shared_{nullptr, {}, 0, 0};
};

}  // namespace moat::metrics
