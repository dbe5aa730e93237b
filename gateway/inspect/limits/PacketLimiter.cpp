#include "gateway/inspect/limits/PacketLimiter.h"

#include <algorithm>

namespace moat::inspect {

using mqtt::PacketType;

PacketLimiter::PacketLimiter(const LimiterOptions& options)
    : publish_(options.publishRate),
      bytes_(options.publishBytesRate),
      control_(options.controlPacketRate),
      disconnect_(options.disconnectOnExceed) {}

void PacketLimiter::reconfigure(const LimiterOptions& options) {
    publish_.reconfigure(options.publishRate);
    bytes_.reconfigure(options.publishBytesRate);
    control_.reconfigure(options.controlPacketRate);
    disconnect_ = options.disconnectOnExceed;
}

LimitDecision PacketLimiter::admit(PacketType type, size_t bytes, SteadyTime now) {
    const bool publish = type == PacketType::Publish;
    const bool control = type == PacketType::Pingreq || type == PacketType::Subscribe ||
                         type == PacketType::Unsubscribe ||
                         type == PacketType::Auth;  // AUTH: each costs a signature check
    LimitDecision d;
    if (!publish && !control) return d;
    double need = 1;
    TokenBucket* waitOn = nullptr;
    if (control) {
        if (control_.tryTake(1, now)) return d;
        d.limit = "control_packet_rate";
        waitOn = &control_;
    } else if (publish_.unlimited() && bytes_.unlimited()) {
        d.publishAdmitted = true;
        return d;
    } else if (!publish_.tryTake(1, now)) {
        d.limit = "publish_rate";
        waitOn = &publish_;
    } else if (!bytes_.tryTake(static_cast<double>(bytes), now)) {
        publish_.consume(-1, now);  // give the message token back
        d.limit = "publish_bytes_rate";
        waitOn = &bytes_;
        need = static_cast<double>(bytes);
    } else {
        d.publishAdmitted = true;
        return d;
    }
    if (disconnect_) {
        d.kind = LimitDecision::Kind::Close;
        d.v5Reason =
            waitOn == &bytes_ ? mqtt::reason::QuotaExceeded : mqtt::reason::MessageRateTooHigh;
        return d;
    }
    d.kind = LimitDecision::Kind::Hold;
    d.holdMs = static_cast<uint64_t>(std::max<int64_t>(
        1, std::chrono::ceil<std::chrono::milliseconds>(waitOn->timeUntil(need, now)).count()));
    return d;
}

}  // namespace moat::inspect
