#pragma once
// Whether the broker is serving, for /healthz and moat_backend_up. A TCP connect alone does not
// show it: a broker that accepts connections but never answers CONNECT is down for every
// device. Consecutive CONNACK timeouts therefore mark it down, until a CONNACK arrives or the
// mark has been held for a while (so a balancer that stops sending devices because of the 503
// does not keep it down for ever: the next timeout after the hold marks it down again).
// Not thread-safe: the gateway guards it.

#include <chrono>
#include <cstdint>

namespace moat::inspect {

class BackendHealth {
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr unsigned kTimeoutsForDown = 3;
    static constexpr std::chrono::seconds kHold{30};

    void connackTimedOut(Clock::time_point now) {
        if (++timeouts_ >= kTimeoutsForDown) {
            timeouts_ = kTimeoutsForDown - 1;  // after the hold, one more timeout is enough
            downUntil_ = now + kHold;
            down_ = true;
        }
    }
    void connackReceived() {
        timeouts_ = 0;
        down_ = false;
    }
    // The broker does not answer CONNECT (the TCP reachability is judged separately).
    bool unresponsive(Clock::time_point now) const { return down_ && now < downUntil_; }

  private:
    unsigned timeouts_ = 0;
    bool down_ = false;
    Clock::time_point downUntil_{};
};

}  // namespace moat::inspect
