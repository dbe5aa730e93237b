#pragma once
// A token bucket driven by an injected clock: no threads, no syscalls, no allocation.
// Used for per-client publish / byte rates and per-IP connection rates.

#include <chrono>
#include <cstdint>

namespace moat::inspect {

using SteadyTime = std::chrono::steady_clock::time_point;

class TokenBucket {
  public:
    // An unlimited bucket (every take succeeds).
    TokenBucket() = default;
    // ratePerSecond <= 0 means unlimited. burst <= 0 means "1 s worth" (the contract default).
    // The bucket starts full, at the time of the first call that passes a clock value.
    explicit TokenBucket(double ratePerSecond, double burst = 0);

    // Takes n tokens if they are available. A request larger than the burst can never be
    // satisfied from a full bucket, so it is allowed whenever the bucket is full and leaves the
    // bucket in debt: the long-run rate still holds and a big packet is not starved forever.
    bool tryTake(double n, SteadyTime now);
    // Takes n tokens unconditionally (may go into debt). For work already done, e.g. bytes
    // that were read before they could be judged; the reader then waits for timeUntil().
    void consume(double n, SteadyTime now);
    // Tokens currently available; negative while in debt. +infinity when unlimited.
    double available(SteadyTime now);
    // How long until tryTake(n) would succeed (zero if it would now). Rounded up, so a timer
    // armed with this duration never fires early. Used to resume a throttled reader.
    std::chrono::nanoseconds timeUntil(double n, SteadyTime now);

    bool unlimited() const { return rate_ <= 0; }
    double rate() const { return rate_; }
    double burst() const { return burst_; }
    // True when the bucket holds a full burst (it then carries no history and can be dropped).
    bool full(SteadyTime now);

    // New rate / burst (config reload); tokens already held are kept, clamped to the new burst.
    void reconfigure(double ratePerSecond, double burst = 0);

  private:
    void refill(SteadyTime now);
    // What a request of n tokens needs in the bucket (see tryTake on oversized requests).
    double needed(double n) const { return n > burst_ ? burst_ : n; }

    double rate_ = 0;    // tokens per second; <= 0 unlimited
    double burst_ = 0;   // capacity
    double tokens_ = 0;  // may be negative (debt)
    SteadyTime last_{};
    bool primed_ = false;  // last_ is meaningful (the bucket has seen a clock value)
};

}  // namespace moat::inspect
