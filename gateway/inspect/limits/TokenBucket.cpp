#include "gateway/inspect/limits/TokenBucket.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moat::inspect {

namespace {

// Refill arithmetic is in floating point; this slack absorbs rounding so that waiting exactly
// timeUntil(n) always makes tryTake(n) succeed.
constexpr double kEpsilon = 1e-9;

double defaultBurst(double rate, double burst) {
    return burst > 0 ? burst : rate;
}

}  // namespace

TokenBucket::TokenBucket(double ratePerSecond, double burst)
    : rate_(ratePerSecond > 0 ? ratePerSecond : 0),
      burst_(defaultBurst(rate_, burst)),
      tokens_(burst_) {}

void TokenBucket::refill(SteadyTime now) {
    if (!primed_) {
        primed_ = true;
        last_ = now;
        tokens_ = burst_;
        return;
    }
    if (now <= last_) return;  // an injected clock that goes backwards must not mint tokens
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_ = now;
}

bool TokenBucket::tryTake(double n, SteadyTime now) {
    if (unlimited()) return true;
    refill(now);
    if (tokens_ + kEpsilon * std::max(1.0, burst_) < needed(n)) return false;
    tokens_ -= n;
    return true;
}

void TokenBucket::consume(double n, SteadyTime now) {
    if (unlimited()) return;
    refill(now);
    tokens_ -= n;
}

double TokenBucket::available(SteadyTime now) {
    if (unlimited()) return std::numeric_limits<double>::infinity();
    refill(now);
    return tokens_;
}

bool TokenBucket::full(SteadyTime now) {
    if (unlimited()) return true;
    refill(now);
    return tokens_ >= burst_;
}

std::chrono::nanoseconds TokenBucket::timeUntil(double n, SteadyTime now) {
    if (unlimited()) return std::chrono::nanoseconds{0};
    refill(now);
    const double deficit = needed(n) - tokens_;
    if (deficit <= 0) return std::chrono::nanoseconds{0};
    const double ns = std::ceil(deficit / rate_ * 1e9);
    // Saturate instead of overflowing on absurd inputs (a rate of 1e-300 tokens/s).
    constexpr double kMax = static_cast<double>(std::numeric_limits<int64_t>::max() / 2);
    return std::chrono::nanoseconds{static_cast<int64_t>(std::min(ns + 1, kMax))};
}

void TokenBucket::reconfigure(double ratePerSecond, double burst) {
    const bool wasUnlimited = unlimited();
    rate_ = ratePerSecond > 0 ? ratePerSecond : 0;
    burst_ = defaultBurst(rate_, burst);
    // A bucket that was unlimited has no meaningful level: start the new limit full.
    tokens_ = wasUnlimited ? burst_ : std::min(tokens_, burst_);
}

}  // namespace moat::inspect
