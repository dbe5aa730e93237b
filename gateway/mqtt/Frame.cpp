#include "gateway/mqtt/Frame.h"

#include "gateway/mqtt/Wire.h"

namespace moat::mqtt {

FrameStatus parseFrame(const uint8_t* data, size_t len, Frame& out) {
    if (len == 0) return FrameStatus::NeedMore;
    // Reject type 0 on the first byte: no reason to wait for more of a packet that cannot be.
    if ((data[0] >> 4) == 0) return FrameStatus::Malformed;
    uint32_t remaining = 0;
    size_t used = 0;
    switch (wire::decodeVarint(data + 1, len - 1, remaining, used)) {
        case wire::VarintStatus::NeedMore:
            return FrameStatus::NeedMore;
        case wire::VarintStatus::Malformed:
            return FrameStatus::Malformed;
        case wire::VarintStatus::Ok:
            break;
    }
    out.firstByte = data[0];
    out.remainingLength = remaining;
    out.headerSize = uint8_t(1 + used);
    return FrameStatus::Ok;
}

bool validFixedHeaderFlags(const Frame& frame, ProtocolVersion version) {
    const uint8_t flags = frame.flags();
    switch (frame.type()) {
        case PacketType::Publish:
            return ((flags >> 1) & 0x03) != 0x03;
        case PacketType::Pubrel:
        case PacketType::Subscribe:
        case PacketType::Unsubscribe:
            return flags == 0x02;
        case PacketType::Auth:
            return version == ProtocolVersion::V5 && flags == 0;
        case PacketType::Connect:
        case PacketType::Connack:
        case PacketType::Puback:
        case PacketType::Pubrec:
        case PacketType::Pubcomp:
        case PacketType::Suback:
        case PacketType::Unsuback:
        case PacketType::Pingreq:
        case PacketType::Pingresp:
        case PacketType::Disconnect:
            return flags == 0;
    }
    return false;  // type 0
}

size_t encodeRemainingLength(uint32_t value, uint8_t out[4]) {
    if (value > kMaxRemainingLength) return 0;
    size_t n = 0;
    do {
        uint8_t b = value & 0x7F;
        value >>= 7;
        if (value) b |= 0x80;
        out[n++] = b;
    } while (value);
    return n;
}

}  // namespace moat::mqtt
