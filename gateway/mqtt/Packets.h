#pragma once
// Decoded MQTT packets. Owned structs for the control packets the gateway inspects or rewrites;
// PublishView borrows from the receive buffer because PUBLISH is the bulk of the traffic.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/mqtt/Properties.h"
#include "gateway/mqtt/Types.h"

namespace moat::mqtt {

struct ConnectPacket {
    std::string protocolName = "MQTT";
    uint8_t protocolLevel = 4;  // as received; `version` is only meaningful when supported
    ProtocolVersion version = ProtocolVersion::V311;
    bool cleanStart = true;
    uint16_t keepAlive = 0;
    std::string clientId;
    bool willFlag = false;
    uint8_t willQos = 0;
    bool willRetain = false;
    std::string willTopic;
    std::string willPayload;
    std::vector<Property> willProperties;
    std::optional<std::string> username;
    std::optional<std::string> password;  // binary data
    std::vector<Property> properties;

    std::optional<uint32_t> sessionExpiry() const {
        return findNumber(properties, prop::SessionExpiryInterval);
    }
    std::optional<uint32_t> receiveMaximum() const {
        return findNumber(properties, prop::ReceiveMaximum);
    }
    std::optional<uint32_t> maximumPacketSize() const {
        return findNumber(properties, prop::MaximumPacketSize);
    }
    std::optional<uint32_t> topicAliasMaximum() const {
        return findNumber(properties, prop::TopicAliasMaximum);
    }
    std::optional<std::string> authenticationMethod() const {
        return findString(properties, prop::AuthenticationMethod);
    }
    std::optional<std::string> authenticationData() const {
        return findString(properties, prop::AuthenticationData);
    }
    bool operator==(const ConnectPacket&) const = default;
};

struct ConnackPacket {
    bool sessionPresent = false;
    uint8_t code = 0;  // v5 reason code, or v3 return code
    std::vector<Property> properties;
    bool operator==(const ConnackPacket&) const = default;
};

// A PUBLISH as received: every view points into the caller's buffer, nothing is allocated.
struct PublishView {
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::string_view topic;               // may be empty in v5 when topicAlias is set
    uint16_t packetId = 0;                // 0 for QoS 0
    std::span<const uint8_t> properties;  // raw v5 properties block, without its length
    std::optional<uint16_t> topicAlias;
    uint16_t userPropertyCount = 0;
    bool hasSubscriptionId = false;  // only a server may send one
    bool payloadUtf8 = false;        // v5 Payload Format Indicator = 1
    std::string_view payload;
};

// A PUBLISH the gateway builds or rewrites (alias resolved, identity stamped...).
struct PublishPacket {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    uint16_t packetId = 0;
    std::vector<Property> properties;
    bool operator==(const PublishPacket&) const = default;
};

struct Subscription {
    std::string filter;
    uint8_t options = 0;  // v3: QoS only; v5: QoS | NL<<2 | RAP<<3 | RH<<4

    uint8_t qos() const { return options & 0x03; }
    bool noLocal() const { return options & 0x04; }
    bool retainAsPublished() const { return options & 0x08; }
    uint8_t retainHandling() const { return (options >> 4) & 0x03; }
    bool operator==(const Subscription&) const = default;
};

struct SubscribePacket {
    uint16_t packetId = 0;
    std::vector<Subscription> subscriptions;
    std::vector<Property> properties;

    std::optional<uint32_t> subscriptionIdentifier() const {
        return findNumber(properties, prop::SubscriptionIdentifier);
    }
    bool operator==(const SubscribePacket&) const = default;
};

struct SubackPacket {
    uint16_t packetId = 0;
    std::vector<uint8_t> codes;
    std::vector<Property> properties;
    bool operator==(const SubackPacket&) const = default;
};

struct UnsubscribePacket {
    uint16_t packetId = 0;
    std::vector<std::string> filters;
    std::vector<Property> properties;
    bool operator==(const UnsubscribePacket&) const = default;
};

struct UnsubackPacket {
    uint16_t packetId = 0;
    std::vector<uint8_t> codes;  // v5 only; 3.x UNSUBACK has no payload
    std::vector<Property> properties;
    bool operator==(const UnsubackPacket&) const = default;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP.
struct AckPacket {
    PacketType type = PacketType::Puback;
    uint16_t packetId = 0;
    uint8_t reason = 0;  // v5 only
    std::vector<Property> properties;
    bool operator==(const AckPacket&) const = default;
};

struct DisconnectPacket {
    uint8_t reason = 0;  // v5 only
    std::vector<Property> properties;
    bool operator==(const DisconnectPacket&) const = default;
};

struct AuthPacket {
    uint8_t reason = 0;
    std::vector<Property> properties;
    bool operator==(const AuthPacket&) const = default;
};

}  // namespace moat::mqtt
