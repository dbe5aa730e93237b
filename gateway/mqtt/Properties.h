#pragma once
// MQTT 5 properties (spec 2.2.2). Two representations:
//  - PropertyView / PropertyList: borrowed views into a received packet, validated in one pass,
//    no allocation for up to PropertyList::kInline properties (the usual case).
//  - Property: an owned value, used by the decoded packet structs and for encoding.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/mqtt/Types.h"

namespace moat::mqtt {

namespace prop {
inline constexpr uint8_t PayloadFormatIndicator = 0x01;
inline constexpr uint8_t MessageExpiryInterval = 0x02;
inline constexpr uint8_t ContentType = 0x03;
inline constexpr uint8_t ResponseTopic = 0x08;
inline constexpr uint8_t CorrelationData = 0x09;
inline constexpr uint8_t SubscriptionIdentifier = 0x0B;
inline constexpr uint8_t SessionExpiryInterval = 0x11;
inline constexpr uint8_t AssignedClientIdentifier = 0x12;
inline constexpr uint8_t ServerKeepAlive = 0x13;
inline constexpr uint8_t AuthenticationMethod = 0x15;
inline constexpr uint8_t AuthenticationData = 0x16;
inline constexpr uint8_t RequestProblemInformation = 0x17;
inline constexpr uint8_t WillDelayInterval = 0x18;
inline constexpr uint8_t RequestResponseInformation = 0x19;
inline constexpr uint8_t ResponseInformation = 0x1A;
inline constexpr uint8_t ServerReference = 0x1C;
inline constexpr uint8_t ReasonString = 0x1F;
inline constexpr uint8_t ReceiveMaximum = 0x21;
inline constexpr uint8_t TopicAliasMaximum = 0x22;
inline constexpr uint8_t TopicAlias = 0x23;
inline constexpr uint8_t MaximumQos = 0x24;
inline constexpr uint8_t RetainAvailable = 0x25;
inline constexpr uint8_t UserProperty = 0x26;
inline constexpr uint8_t MaximumPacketSize = 0x27;
inline constexpr uint8_t WildcardSubscriptionAvailable = 0x28;
inline constexpr uint8_t SubscriptionIdentifierAvailable = 0x29;
inline constexpr uint8_t SharedSubscriptionAvailable = 0x2A;
}  // namespace prop

// How a property's value is encoded on the wire.
enum class PropertyKind : uint8_t { Unknown, Byte, TwoByte, FourByte, Varint, Utf8, Binary, Pair };

PropertyKind propertyKind(uint8_t id);
// snake_case name ("topic_alias"), "unknown" for undefined ids.
const char* propertyName(uint8_t id);

// Where a properties block sits: a packet type, or the will properties of CONNECT.
enum class PropertyScope : uint8_t {
    Connect = 1,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
    Auth,
    Will = 16,
};
inline PropertyScope scopeOf(PacketType type) {
    return PropertyScope(uint8_t(type));
}

// True if the spec (table 2-4) allows property `id` in `scope`.
bool propertyAllowed(uint8_t id, PropertyScope scope);

// A property borrowed from a packet buffer. Integers (byte, two/four-byte, varint) are in
// `number`; UTF-8 strings and binary data in `str`; a user property's name in `str` and value in
// `str2`.
struct PropertyView {
    uint8_t id = 0;
    uint32_t number = 0;
    std::string_view str;
    std::string_view str2;
};

// Validated properties of one packet, in wire order. Holds kInline views without allocating.
class PropertyList {
  public:
    static constexpr size_t kInline = 16;

    void clear() {
        size_ = 0;
        userProperties_ = 0;
        overflow_.clear();
    }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    const PropertyView& operator[](size_t i) const {
        return i < kInline ? inline_[i] : overflow_[i - kInline];
    }
    // First property with this id, or nullptr.
    const PropertyView* find(uint8_t id) const;
    size_t userPropertyCount() const { return userProperties_; }

    void push(const PropertyView& v);

  private:
    std::array<PropertyView, kInline> inline_{};
    size_t size_ = 0;
    size_t userProperties_ = 0;
    std::vector<PropertyView> overflow_;
};

// Validates a properties block (the bytes after its length) and fills `out`. Returns
// reason::Success, MalformedPacket (unknown id, truncated value, bad UTF-8) or ProtocolError
// (property not allowed in `scope`, forbidden duplicate, value out of range: a zero Receive
// Maximum / Maximum Packet Size / Subscription Identifier, a 0/1 flag with another value).
// Only User Property, and Subscription Identifier in PUBLISH, may repeat.
uint8_t parseProperties(const uint8_t* p, size_t len, PropertyScope scope, PropertyList& out);
inline uint8_t parseProperties(const uint8_t* p, size_t len, PacketType where, PropertyList& out) {
    return parseProperties(p, len, scopeOf(where), out);
}

// An owned property. Integers in `number`; strings and binary data in `str`; a user property's
// name in `str` and value in `str2`.
struct Property {
    uint8_t id = 0;
    uint32_t number = 0;
    std::string str;
    std::string str2;

    static Property integer(uint8_t id, uint32_t value) { return {id, value, {}, {}}; }
    static Property string(uint8_t id, std::string value) { return {id, 0, std::move(value), {}}; }
    static Property user(std::string name, std::string value) {
        return {prop::UserProperty, 0, std::move(name), std::move(value)};
    }
    static Property fromView(const PropertyView& v) {
        return {v.id, v.number, std::string(v.str), std::string(v.str2)};
    }
    bool operator==(const Property&) const = default;
};

// Validates like parseProperties and appends owned copies to `out`.
uint8_t decodeProperties(const uint8_t* p, size_t len, PropertyScope scope,
                         std::vector<Property>& out);

const Property* findProperty(const std::vector<Property>& props, uint8_t id);
std::optional<uint32_t> findNumber(const std::vector<Property>& props, uint8_t id);
std::optional<std::string> findString(const std::vector<Property>& props, uint8_t id);

// Size of the encoded properties without the length prefix.
size_t propertiesSize(const std::vector<Property>& props);

// Appends the length prefix and the properties. Returns false (out unchanged) for an unknown id
// or a string longer than 65535 bytes. The encoder trusts the caller on everything else.
bool encodeProperties(const std::vector<Property>& props, std::vector<uint8_t>& out);

}  // namespace moat::mqtt
