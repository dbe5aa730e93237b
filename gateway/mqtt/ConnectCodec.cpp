// CONNECT and CONNACK.

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/PropertyWalker.h"
#include "gateway/mqtt/Utf8.h"
#include "gateway/mqtt/Wire.h"

namespace moat::mqtt {

namespace {

constexpr uint8_t kFlagReserved = 0x01;
constexpr uint8_t kFlagCleanStart = 0x02;
constexpr uint8_t kFlagWill = 0x04;
constexpr uint8_t kFlagWillRetain = 0x20;
constexpr uint8_t kFlagPassword = 0x40;
constexpr uint8_t kFlagUsername = 0x80;

bool readUtf8(wire::Reader& r, std::string& out) {
    std::string_view v;
    if (!r.prefixed(v) || !validMqttUtf8(v)) return false;
    out.assign(v);
    return true;
}

}  // namespace

uint8_t decodeConnect(const uint8_t* body, size_t len, ConnectPacket& out) {
    wire::Reader r(body, len);
    std::string_view name;
    uint8_t level = 0;
    if (!r.prefixed(name) || !r.u8(level)) return reason::MalformedPacket;
    out.protocolName.assign(name);
    out.protocolLevel = level;
    if (name == "MQTT" && (level == 4 || level == 5)) {
        out.version = ProtocolVersion(level);
    } else if (name == "MQIsdp" && level == 3) {
        out.version = ProtocolVersion::V31;
    } else {
        return reason::UnsupportedProtocolVersion;
    }
    const bool v5 = out.version == ProtocolVersion::V5;

    uint8_t flags = 0;
    if (!r.u8(flags) || !r.u16(out.keepAlive)) return reason::MalformedPacket;
    if (flags & kFlagReserved) return reason::MalformedPacket;
    out.cleanStart = flags & kFlagCleanStart;
    out.willFlag = flags & kFlagWill;
    out.willQos = (flags >> 3) & 0x03;
    out.willRetain = flags & kFlagWillRetain;
    const bool hasUsername = flags & kFlagUsername;
    const bool hasPassword = flags & kFlagPassword;
    if (out.willQos == 3) return reason::MalformedPacket;
    if (!out.willFlag && (out.willQos != 0 || out.willRetain)) return reason::MalformedPacket;
    if (hasPassword && !hasUsername && !v5) return reason::MalformedPacket;

    out.properties.clear();
    if (v5) {
        if (uint8_t rc = detail::readOwnedProperties(r, PropertyScope::Connect, out.properties))
            return rc;
        if (findProperty(out.properties, prop::AuthenticationData) &&
            !findProperty(out.properties, prop::AuthenticationMethod)) {
            return reason::ProtocolError;
        }
    }
    if (!readUtf8(r, out.clientId)) return reason::MalformedPacket;

    out.willProperties.clear();
    out.willTopic.clear();
    out.willPayload.clear();
    if (out.willFlag) {
        if (v5) {
            if (uint8_t rc =
                    detail::readOwnedProperties(r, PropertyScope::Will, out.willProperties))
                return rc;
        }
        if (!readUtf8(r, out.willTopic)) return reason::MalformedPacket;
        if (!validTopicName(out.willTopic)) return reason::TopicNameInvalid;
        std::string_view payload;
        if (!r.prefixed(payload)) return reason::MalformedPacket;
        out.willPayload.assign(payload);
    }

    out.username.reset();
    out.password.reset();
    if (hasUsername) {
        out.username.emplace();
        if (!readUtf8(r, *out.username)) return reason::MalformedPacket;
    }
    if (hasPassword) {
        std::string_view password;
        if (!r.prefixed(password)) return reason::MalformedPacket;
        out.password.emplace(password);
    }
    if (!r.empty()) return reason::MalformedPacket;

    // Checked last so that a malformed packet is reported as such. 3.1 requires 1..23 chars;
    // 3.1.1 lets the server assign an id only to a clean session (MQTT-3.1.3-7).
    if (out.clientId.empty()) {
        if (out.version == ProtocolVersion::V31 ||
            (out.version == ProtocolVersion::V311 && !out.cleanStart)) {
            return reason::ClientIdentifierNotValid;
        }
    }
    return reason::Success;
}

bool encodeConnect(const ConnectPacket& p, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    const bool v5 = p.version == ProtocolVersion::V5;
    bool ok = wire::putPrefixed(out, p.version == ProtocolVersion::V31 ? "MQIsdp" : "MQTT");
    wire::putU8(out, uint8_t(p.version));
    uint8_t flags = 0;
    if (p.cleanStart) flags |= kFlagCleanStart;
    if (p.willFlag) {
        flags |= kFlagWill | uint8_t((p.willQos & 0x03) << 3);
        if (p.willRetain) flags |= kFlagWillRetain;
    }
    if (p.username) flags |= kFlagUsername;
    if (p.password) flags |= kFlagPassword;
    wire::putU8(out, flags);
    wire::putU16(out, p.keepAlive);
    if (v5) ok = ok && encodeProperties(p.properties, out);
    ok = ok && wire::putPrefixed(out, p.clientId);
    if (p.willFlag) {
        if (v5) ok = ok && encodeProperties(p.willProperties, out);
        ok = ok && wire::putPrefixed(out, p.willTopic) && wire::putPrefixed(out, p.willPayload);
    }
    if (p.username) ok = ok && wire::putPrefixed(out, *p.username);
    if (p.password) ok = ok && wire::putPrefixed(out, *p.password);
    return wire::finishPacket(out, start, uint8_t(PacketType::Connect) << 4, ok);
}

uint8_t decodeConnack(const uint8_t* body, size_t len, ProtocolVersion version,
                      ConnackPacket& out) {
    wire::Reader r(body, len);
    uint8_t flags = 0;
    if (!r.u8(flags) || !r.u8(out.code)) return reason::MalformedPacket;
    out.properties.clear();
    if (version != ProtocolVersion::V5) {
        if (!r.empty()) return reason::MalformedPacket;
        // In 3.1 the first byte is unused; 3.1.1 defines bit 0 as session present.
        if (version == ProtocolVersion::V31) {
            out.sessionPresent = false;
        } else {
            if (flags & 0xFE) return reason::MalformedPacket;
            out.sessionPresent = flags & 0x01;
        }
        if (out.code > v3::NotAuthorized) return reason::ProtocolError;
    } else {
        if (flags & 0xFE) return reason::MalformedPacket;
        out.sessionPresent = flags & 0x01;
        if (!validReasonFor(PacketType::Connack, out.code)) return reason::ProtocolError;
        if (uint8_t rc = detail::readOwnedProperties(r, PropertyScope::Connack, out.properties))
            return rc;
        if (!r.empty()) return reason::MalformedPacket;
    }
    if (out.sessionPresent && out.code != 0) return reason::ProtocolError;
    return reason::Success;
}

bool encodeConnack(ProtocolVersion version, bool sessionPresent, uint8_t code,
                   const std::vector<Property>& props, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    wire::putU8(out, sessionPresent && version != ProtocolVersion::V31 ? 0x01 : 0x00);
    wire::putU8(out, code);
    const bool ok = version != ProtocolVersion::V5 || encodeProperties(props, out);
    return wire::finishPacket(out, start, uint8_t(PacketType::Connack) << 4, ok);
}

}  // namespace moat::mqtt
