#pragma once
// Helpers for the codec tests: hex literals, a byte builder for hand-made (often broken)
// packets, and decode-by-type dispatch.

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/Frame.h"

namespace moat::mqtt::test {

using Bytes = std::vector<uint8_t>;

inline constexpr ProtocolVersion kAllVersions[] = {ProtocolVersion::V31, ProtocolVersion::V311,
                                                   ProtocolVersion::V5};

// "10 0c 00 04" -> bytes; spaces ignored.
inline Bytes hex(std::string_view s) {
    Bytes out;
    int hi = -1;
    for (char c : s) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(uint8_t(hi << 4 | v));
            hi = -1;
        }
    }
    REQUIRE(hi < 0);
    return out;
}

// Builds packet bodies byte by byte; packet() prepends a correct fixed header.
struct Builder {
    Bytes b;
    Builder& u8(uint8_t v) {
        b.push_back(v);
        return *this;
    }
    Builder& u16(uint16_t v) { return u8(uint8_t(v >> 8)).u8(uint8_t(v)); }
    Builder& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
    Builder& str(std::string_view s) {
        u16(uint16_t(s.size()));
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Builder& raw(const Bytes& r) {
        b.insert(b.end(), r.begin(), r.end());
        return *this;
    }
    Builder& raw(std::string_view r) {
        b.insert(b.end(), r.begin(), r.end());
        return *this;
    }
    // A v5 properties block (varint length, then the raw properties).
    Builder& props(const Bytes& p) {
        uint8_t len[4];
        const size_t n = encodeRemainingLength(uint32_t(p.size()), len);
        b.insert(b.end(), len, len + n);
        return raw(p);
    }
    Bytes packet(uint8_t firstByte) const {
        Bytes out{firstByte};
        uint8_t len[4];
        const size_t n = encodeRemainingLength(uint32_t(b.size()), len);
        out.insert(out.end(), len, len + n);
        out.insert(out.end(), b.begin(), b.end());
        return out;
    }
};

// Parses the fixed header of a complete packet.
inline Frame frameOf(const Bytes& packet) {
    Frame f;
    REQUIRE(parseFrame(packet.data(), packet.size(), f) == FrameStatus::Ok);
    REQUIRE(f.totalSize() == packet.size());
    return f;
}

inline const uint8_t* bodyOf(const Bytes& packet) {
    return packet.data() + frameOf(packet).headerSize;
}

// Decodes any packet type; when `reencoded` is non-null, also re-encodes what decoded.
inline uint8_t decodeAny(const Bytes& packet, ProtocolVersion v, Bytes* reencoded = nullptr) {
    const Frame f = frameOf(packet);
    if (!validFixedHeaderFlags(f, v)) return reason::MalformedPacket;
    const uint8_t* body = packet.data() + f.headerSize;
    const size_t len = f.remainingLength;
    Bytes scratch;
    Bytes& out = reencoded ? *reencoded : scratch;
    uint8_t rc = reason::Success;
    switch (f.type()) {
        case PacketType::Connect: {
            ConnectPacket p;
            rc = decodeConnect(body, len, p);
            if (rc == reason::Success) encodeConnect(p, out);
            break;
        }
        case PacketType::Connack: {
            ConnackPacket p;
            rc = decodeConnack(body, len, v, p);
            if (rc == reason::Success)
                encodeConnack(v, p.sessionPresent, p.code, p.properties, out);
            break;
        }
        case PacketType::Publish: {
            PublishView view;
            rc = decodePublish(f, body, v, view);
            if (rc == reason::Success) encodePublish(toPublishPacket(view), v, out);
            break;
        }
        case PacketType::Puback:
        case PacketType::Pubrec:
        case PacketType::Pubrel:
        case PacketType::Pubcomp: {
            AckPacket p;
            rc = decodeAck(f.type(), body, len, v, p);
            if (rc == reason::Success) encodeAck(p, v, out);
            break;
        }
        case PacketType::Subscribe: {
            SubscribePacket p;
            rc = decodeSubscribe(body, len, v, p);
            if (rc == reason::Success) encodeSubscribe(p, v, out);
            break;
        }
        case PacketType::Suback: {
            SubackPacket p;
            rc = decodeSuback(body, len, v, p);
            if (rc == reason::Success) encodeSuback(p, v, out);
            break;
        }
        case PacketType::Unsubscribe: {
            UnsubscribePacket p;
            rc = decodeUnsubscribe(body, len, v, p);
            if (rc == reason::Success) encodeUnsubscribe(p, v, out);
            break;
        }
        case PacketType::Unsuback: {
            UnsubackPacket p;
            rc = decodeUnsuback(body, len, v, p);
            if (rc == reason::Success) encodeUnsuback(p, v, out);
            break;
        }
        case PacketType::Pingreq:
            rc = decodeEmpty(len);
            if (rc == reason::Success) encodePingreq(out);
            break;
        case PacketType::Pingresp:
            rc = decodeEmpty(len);
            if (rc == reason::Success) encodePingresp(out);
            break;
        case PacketType::Disconnect: {
            DisconnectPacket p;
            rc = decodeDisconnect(body, len, v, p);
            if (rc == reason::Success) encodeDisconnect(v, p.reason, p.properties, out);
            break;
        }
        case PacketType::Auth: {
            AuthPacket p;
            rc = decodeAuth(body, len, v, p);
            if (rc == reason::Success) encodeAuth(p, out);
            break;
        }
    }
    return rc;
}

// Decodes, re-encodes and checks the bytes are identical (the packet is in canonical form).
inline void requireByteRoundTrip(const Bytes& packet, ProtocolVersion v) {
    Bytes again;
    REQUIRE(reasonName(decodeAny(packet, v, &again)) == std::string("success"));
    REQUIRE(again == packet);
}

}  // namespace moat::mqtt::test
