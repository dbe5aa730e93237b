#pragma once
// Per-client packet limits (CONTRACT §3 "Limits"): publish_rate and publish_bytes_rate for
// PUBLISH, control_packet_rate for PINGREQ / SUBSCRIBE / UNSUBSCRIBE. Pure, clock passed in.
//
// A packet over a limit is either held (`on_exceed: throttle`: the connection stops reading
// and the packet stays buffered until the bucket has refilled, so nothing is lost and TCP
// flow control slows the device) or ends the connection (`on_exceed: disconnect`).

#include <cstdint>

#include "gateway/inspect/limits/TokenBucket.h"
#include "gateway/mqtt/Types.h"

namespace moat::inspect {

struct LimiterOptions {
    double publishRate = 0;        // messages per second; <= 0 unlimited
    double publishBytesRate = 0;   // PUBLISH bytes (whole packets) per second
    double controlPacketRate = 0;  // PINGREQ / SUBSCRIBE / UNSUBSCRIBE per second
    bool disconnectOnExceed = false;
};

struct LimitDecision {
    enum class Kind : uint8_t { Admit, Hold, Close };
    Kind kind = Kind::Admit;
    uint64_t holdMs = 0;           // Hold: read again after this long (>= 1)
    const char* limit = nullptr;   // Hold / Close: "publish_rate", "publish_bytes_rate", ...
    uint8_t v5Reason = 0;          // Close: 0x96 message rate too high / 0x97 quota exceeded
    bool publishAdmitted = false;  // Admit of a PUBLISH (the spike baseline counts it once)
};

class PacketLimiter {
  public:
    PacketLimiter() = default;
    explicit PacketLimiter(const LimiterOptions& options);

    LimitDecision admit(mqtt::PacketType type, size_t bytes, SteadyTime now);
    // Reload: new rates; tokens held are kept (clamped to the new burst).
    void reconfigure(const LimiterOptions& options);

  private:
    TokenBucket publish_;  // messages
    TokenBucket bytes_;    // PUBLISH bytes
    TokenBucket control_;  // PINGREQ / SUBSCRIBE / UNSUBSCRIBE
    bool disconnect_ = false;
};

}  // namespace moat::inspect
