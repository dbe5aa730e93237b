#pragma once
// Server-side keepalive (MQTT 3.1.1 §3.1.2.10, 5.0 §3.1.2.10): a client that sends no
// *control packet* for 1.5 x keepalive is closed. Only a complete packet counts: a byte of a
// packet that never completes is not activity, or one byte every few seconds keeps a dead or
// hostile connection open for ever (SlowITe, CVE-2020-13849).

#include <cstdint>

namespace moat::inspect {

class KeepAlive {
  public:
    // keepAliveSeconds 0: no deadline.
    void start(uint16_t keepAliveSeconds, uint64_t nowMs) {
        limitMs_ = keepAliveSeconds * 1500ull;
        lastPacketMs_ = nowMs;
    }
    // A whole control packet arrived (or the gateway itself stopped reading the client).
    void packet(uint64_t nowMs) { lastPacketMs_ = nowMs; }
    bool enabled() const { return limitMs_ != 0; }
    // Milliseconds until the deadline; 0: it has passed.
    uint64_t remaining(uint64_t nowMs) const {
        const uint64_t idle = nowMs > lastPacketMs_ ? nowMs - lastPacketMs_ : 0;
        return idle >= limitMs_ ? 0 : limitMs_ - idle;
    }
    uint64_t limitMs() const { return limitMs_; }

  private:
    uint64_t limitMs_ = 0;
    uint64_t lastPacketMs_ = 0;
};

}  // namespace moat::inspect
