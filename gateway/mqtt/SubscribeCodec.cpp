// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/PropertyWalker.h"
#include "gateway/mqtt/Utf8.h"
#include "gateway/mqtt/Wire.h"

namespace moat::mqtt {

namespace {

constexpr uint8_t kSubscribeFirstByte = uint8_t(PacketType::Subscribe) << 4 | 0x02;
constexpr uint8_t kUnsubscribeFirstByte = uint8_t(PacketType::Unsubscribe) << 4 | 0x02;

// Packet id then, on v5, the properties block.
uint8_t readIdAndProperties(wire::Reader& r, ProtocolVersion version, PropertyScope scope,
                            uint16_t& packetId, std::vector<Property>& props) {
    props.clear();
    if (!r.u16(packetId)) return reason::MalformedPacket;
    if (packetId == 0) return reason::ProtocolError;
    if (version == ProtocolVersion::V5) return detail::readOwnedProperties(r, scope, props);
    return reason::Success;
}

uint8_t readFilter(wire::Reader& r, ProtocolVersion version, std::string_view& filter) {
    if (!r.prefixed(filter) || !validMqttUtf8(filter)) return reason::MalformedPacket;
    if (!validTopicFilter(filter)) {
        return version == ProtocolVersion::V5 ? reason::TopicFilterInvalid
                                              : reason::MalformedPacket;
    }
    return reason::Success;
}

uint8_t readCodes(wire::Reader& r, PacketType type, ProtocolVersion version,
                  std::vector<uint8_t>& codes) {
    codes.clear();
    const std::string_view rest = r.rest();
    if (rest.empty()) return reason::ProtocolError;
    for (char c : rest) {
        const uint8_t code = uint8_t(c);
        const bool valid = version == ProtocolVersion::V5
                               ? validReasonFor(type, code)
                               : (code <= 2 || code == v3::SubackFailure);
        if (!valid) return reason::ProtocolError;
        codes.push_back(code);
    }
    return reason::Success;
}

}  // namespace

uint8_t decodeSubscribe(const uint8_t* body, size_t len, ProtocolVersion version,
                        SubscribePacket& out) {
    wire::Reader r(body, len);
    out.subscriptions.clear();
    if (uint8_t rc =
            readIdAndProperties(r, version, PropertyScope::Subscribe, out.packetId, out.properties))
        return rc;
    const bool v5 = version == ProtocolVersion::V5;
    // Reserved option bits: v5 uses bits 0-5, 3.x only the QoS bits.
    const uint8_t reservedBits = v5 ? 0xC0 : 0xFC;
    while (!r.empty()) {
        std::string_view filter;
        if (uint8_t rc = readFilter(r, version, filter)) return rc;
        uint8_t options = 0;
        if (!r.u8(options)) return reason::MalformedPacket;
        if ((options & reservedBits) || (options & 0x03) == 0x03) return reason::MalformedPacket;
        Subscription sub{std::string(filter), options};
        if (v5) {
            if (sub.retainHandling() == 3) return reason::ProtocolError;
            if (sub.noLocal() && isSharedSubscription(filter)) return reason::ProtocolError;
        }
        out.subscriptions.push_back(std::move(sub));
    }
    if (out.subscriptions.empty()) return reason::ProtocolError;
    return reason::Success;
}

bool encodeSubscribe(const SubscribePacket& p, ProtocolVersion version, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    wire::putU16(out, p.packetId);
    bool ok = version != ProtocolVersion::V5 || encodeProperties(p.properties, out);
    for (const auto& s : p.subscriptions) {
        ok = ok && wire::putPrefixed(out, s.filter);
        wire::putU8(out, s.options);
    }
    return wire::finishPacket(out, start, kSubscribeFirstByte, ok);
}

uint8_t decodeSuback(const uint8_t* body, size_t len, ProtocolVersion version, SubackPacket& out) {
    wire::Reader r(body, len);
    if (uint8_t rc =
            readIdAndProperties(r, version, PropertyScope::Suback, out.packetId, out.properties))
        return rc;
    return readCodes(r, PacketType::Suback, version, out.codes);
}

bool encodeSuback(const SubackPacket& p, ProtocolVersion version, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    wire::putU16(out, p.packetId);
    const bool ok = version != ProtocolVersion::V5 || encodeProperties(p.properties, out);
    out.insert(out.end(), p.codes.begin(), p.codes.end());
    return wire::finishPacket(out, start, uint8_t(PacketType::Suback) << 4, ok);
}

uint8_t decodeUnsubscribe(const uint8_t* body, size_t len, ProtocolVersion version,
                          UnsubscribePacket& out) {
    wire::Reader r(body, len);
    out.filters.clear();
    if (uint8_t rc = readIdAndProperties(r, version, PropertyScope::Unsubscribe, out.packetId,
                                         out.properties))
        return rc;
    while (!r.empty()) {
        std::string_view filter;
        if (uint8_t rc = readFilter(r, version, filter)) return rc;
        out.filters.emplace_back(filter);
    }
    if (out.filters.empty()) return reason::ProtocolError;
    return reason::Success;
}

bool encodeUnsubscribe(const UnsubscribePacket& p, ProtocolVersion version, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    wire::putU16(out, p.packetId);
    bool ok = version != ProtocolVersion::V5 || encodeProperties(p.properties, out);
    for (const auto& f : p.filters) ok = ok && wire::putPrefixed(out, f);
    return wire::finishPacket(out, start, kUnsubscribeFirstByte, ok);
}

uint8_t decodeUnsuback(const uint8_t* body, size_t len, ProtocolVersion version,
                       UnsubackPacket& out) {
    wire::Reader r(body, len);
    out.codes.clear();
    if (uint8_t rc =
            readIdAndProperties(r, version, PropertyScope::Unsuback, out.packetId, out.properties))
        return rc;
    if (version != ProtocolVersion::V5) {
        return r.empty() ? reason::Success : reason::MalformedPacket;
    }
    return readCodes(r, PacketType::Unsuback, version, out.codes);
}

bool encodeUnsuback(const UnsubackPacket& p, ProtocolVersion version, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    wire::putU16(out, p.packetId);
    bool ok = true;
    if (version == ProtocolVersion::V5) {
        ok = encodeProperties(p.properties, out);
        out.insert(out.end(), p.codes.begin(), p.codes.end());
    }
    return wire::finishPacket(out, start, uint8_t(PacketType::Unsuback) << 4, ok);
}

}  // namespace moat::mqtt
