#pragma once
// Fixed-header framing. This is the hot path: it runs on every chunk read from a socket, never
// allocates, and lets the caller judge a packet's size before buffering its body.

#include <cstddef>
#include <cstdint>

#include "gateway/mqtt/Types.h"

namespace moat::mqtt {

inline constexpr uint32_t kMaxRemainingLength = 268435455;

enum class FrameStatus { NeedMore, Ok, Malformed };

struct Frame {
    uint8_t firstByte = 0;
    uint32_t remainingLength = 0;
    uint8_t headerSize = 0;  // 2..5

    PacketType type() const { return PacketType(firstByte >> 4); }
    uint8_t flags() const { return firstByte & 0x0F; }
    size_t totalSize() const { return size_t(headerSize) + remainingLength; }
};

// Parses the fixed header at `data`. Ok means `out` is filled; the body may not have arrived yet
// (compare `out.totalSize()` with what is buffered). Malformed: packet type 0, a remaining length
// longer than 4 bytes, or a non-minimal remaining-length encoding. Flags are checked separately
// by validFixedHeaderFlags because their rules depend on the protocol version.
FrameStatus parseFrame(const uint8_t* data, size_t len, Frame& out);

// Reserved fixed-header flags (spec 2.1.3): PUBREL/SUBSCRIBE/UNSUBSCRIBE must carry 0b0010,
// PUBLISH any flags except QoS 3, every other type 0. AUTH (type 15) is reserved before MQTT 5,
// so it is never valid there.
bool validFixedHeaderFlags(const Frame& frame, ProtocolVersion version);

// Writes the Variable Byte Integer form of `value` (<= kMaxRemainingLength) and returns its
// size (1..4); returns 0 and writes nothing if the value is too large.
size_t encodeRemainingLength(uint32_t value, uint8_t out[4]);

}  // namespace moat::mqtt
