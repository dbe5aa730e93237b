#pragma once
// Internal: the single validating pass over a properties block, shared by parseProperties,
// decodeProperties and the allocation-free PUBLISH decoder.

#include <cstdint>

#include "gateway/mqtt/Properties.h"
#include "gateway/mqtt/Utf8.h"
#include "gateway/mqtt/Wire.h"

namespace moat::mqtt::detail {

inline bool repeatable(uint8_t id, PropertyScope scope) {
    return id == prop::UserProperty ||
           (id == prop::SubscriptionIdentifier && scope == PropertyScope::Publish);
}

inline bool valueInRange(const PropertyView& v) {
    switch (v.id) {
        case prop::PayloadFormatIndicator:
        case prop::RequestProblemInformation:
        case prop::RequestResponseInformation:
        case prop::MaximumQos:
        case prop::RetainAvailable:
        case prop::WildcardSubscriptionAvailable:
        case prop::SubscriptionIdentifierAvailable:
        case prop::SharedSubscriptionAvailable:
            return v.number <= 1;
        case prop::ReceiveMaximum:
        case prop::MaximumPacketSize:
        case prop::SubscriptionIdentifier:
            return v.number != 0;
        default:
            return true;
    }
}

// Calls fn(const PropertyView&) for each property, in order, once it has been validated.
template <class Fn>
uint8_t walkProperties(const uint8_t* p, size_t len, PropertyScope scope, Fn&& fn) {
    wire::Reader r(p, len);
    uint64_t seen = 0;  // every defined id is below 64
    while (!r.empty()) {
        PropertyView v;
        r.u8(v.id);
        // Ids are Variable Byte Integers, but every defined one fits in a single byte.
        const PropertyKind kind = (v.id & 0x80) ? PropertyKind::Unknown : propertyKind(v.id);
        if (kind == PropertyKind::Unknown) return reason::MalformedPacket;
        if (!propertyAllowed(v.id, scope)) return reason::ProtocolError;
        bool ok = true;
        switch (kind) {
            case PropertyKind::Byte: {
                uint8_t b = 0;
                ok = r.u8(b);
                v.number = b;
                break;
            }
            case PropertyKind::TwoByte: {
                uint16_t w = 0;
                ok = r.u16(w);
                v.number = w;
                break;
            }
            case PropertyKind::FourByte:
                ok = r.u32(v.number);
                break;
            case PropertyKind::Varint:
                ok = r.varint(v.number);
                break;
            case PropertyKind::Utf8:
                ok = r.prefixed(v.str) && validMqttUtf8(v.str);
                break;
            case PropertyKind::Binary:
                ok = r.prefixed(v.str);
                break;
            case PropertyKind::Pair:
                ok = r.prefixed(v.str) && r.prefixed(v.str2) && validMqttUtf8(v.str) &&
                     validMqttUtf8(v.str2);
                break;
            case PropertyKind::Unknown:
                ok = false;
                break;
        }
        if (!ok) return reason::MalformedPacket;
        const uint64_t bit = uint64_t(1) << v.id;
        if ((seen & bit) && !repeatable(v.id, scope)) return reason::ProtocolError;
        seen |= bit;
        if (!valueInRange(v)) return reason::ProtocolError;
        fn(v);
    }
    return reason::Success;
}

// Reads a length-prefixed properties block from `r` and walks it.
template <class Fn>
uint8_t readPropertiesBlock(wire::Reader& r, PropertyScope scope, Fn&& fn) {
    uint32_t len = 0;
    if (!r.varint(len) || len > r.remaining()) return reason::MalformedPacket;
    const uint8_t* p = r.pos();
    std::string_view skipped;
    r.bytes(len, skipped);
    return walkProperties(p, len, scope, fn);
}

inline uint8_t readOwnedProperties(wire::Reader& r, PropertyScope scope,
                                   std::vector<Property>& out) {
    return readPropertiesBlock(
        r, scope, [&out](const PropertyView& v) { out.push_back(Property::fromView(v)); });
}

}  // namespace moat::mqtt::detail
