#include "gateway/mqtt/Properties.h"

#include "gateway/mqtt/PropertyWalker.h"
#include "gateway/mqtt/Wire.h"

namespace moat::mqtt {

namespace {

struct PropertyInfo {
    PropertyKind kind = PropertyKind::Unknown;
    uint32_t scopes = 0;  // bit n = PropertyScope n
    const char* name = "unknown";
};

constexpr uint32_t bit(PropertyScope s) {
    return uint32_t(1) << uint8_t(s);
}

using S = PropertyScope;
constexpr uint32_t kReasonStringScopes = bit(S::Connack) | bit(S::Puback) | bit(S::Pubrec) |
                                         bit(S::Pubrel) | bit(S::Pubcomp) | bit(S::Suback) |
                                         bit(S::Unsuback) | bit(S::Disconnect) | bit(S::Auth);
constexpr uint32_t kUserPropertyScopes = kReasonStringScopes | bit(S::Connect) | bit(S::Publish) |
                                         bit(S::Will) | bit(S::Subscribe) | bit(S::Unsubscribe);
constexpr uint32_t kMessageScopes = bit(S::Publish) | bit(S::Will);

// Spec table 2-4.
constexpr std::array<PropertyInfo, 0x2B> kTable = [] {
    std::array<PropertyInfo, 0x2B> t{};
    using K = PropertyKind;
    t[prop::PayloadFormatIndicator] = {K::Byte, kMessageScopes, "payload_format_indicator"};
    t[prop::MessageExpiryInterval] = {K::FourByte, kMessageScopes, "message_expiry_interval"};
    t[prop::ContentType] = {K::Utf8, kMessageScopes, "content_type"};
    t[prop::ResponseTopic] = {K::Utf8, kMessageScopes, "response_topic"};
    t[prop::CorrelationData] = {K::Binary, kMessageScopes, "correlation_data"};
    t[prop::SubscriptionIdentifier] = {K::Varint, bit(S::Publish) | bit(S::Subscribe),
                                       "subscription_identifier"};
    t[prop::SessionExpiryInterval] = {K::FourByte,
                                      bit(S::Connect) | bit(S::Connack) | bit(S::Disconnect),
                                      "session_expiry_interval"};
    t[prop::AssignedClientIdentifier] = {K::Utf8, bit(S::Connack), "assigned_client_identifier"};
    t[prop::ServerKeepAlive] = {K::TwoByte, bit(S::Connack), "server_keep_alive"};
    t[prop::AuthenticationMethod] = {K::Utf8, bit(S::Connect) | bit(S::Connack) | bit(S::Auth),
                                     "authentication_method"};
    t[prop::AuthenticationData] = {K::Binary, bit(S::Connect) | bit(S::Connack) | bit(S::Auth),
                                   "authentication_data"};
    t[prop::RequestProblemInformation] = {K::Byte, bit(S::Connect), "request_problem_information"};
    t[prop::WillDelayInterval] = {K::FourByte, bit(S::Will), "will_delay_interval"};
    t[prop::RequestResponseInformation] = {K::Byte, bit(S::Connect),
                                           "request_response_information"};
    t[prop::ResponseInformation] = {K::Utf8, bit(S::Connack), "response_information"};
    t[prop::ServerReference] = {K::Utf8, bit(S::Connack) | bit(S::Disconnect), "server_reference"};
    t[prop::ReasonString] = {K::Utf8, kReasonStringScopes, "reason_string"};
    t[prop::ReceiveMaximum] = {K::TwoByte, bit(S::Connect) | bit(S::Connack), "receive_maximum"};
    t[prop::TopicAliasMaximum] = {K::TwoByte, bit(S::Connect) | bit(S::Connack),
                                  "topic_alias_maximum"};
    t[prop::TopicAlias] = {K::TwoByte, bit(S::Publish), "topic_alias"};
    t[prop::MaximumQos] = {K::Byte, bit(S::Connack), "maximum_qos"};
    t[prop::RetainAvailable] = {K::Byte, bit(S::Connack), "retain_available"};
    t[prop::UserProperty] = {K::Pair, kUserPropertyScopes, "user_property"};
    t[prop::MaximumPacketSize] = {K::FourByte, bit(S::Connect) | bit(S::Connack),
                                  "maximum_packet_size"};
    t[prop::WildcardSubscriptionAvailable] = {K::Byte, bit(S::Connack),
                                              "wildcard_subscription_available"};
    t[prop::SubscriptionIdentifierAvailable] = {K::Byte, bit(S::Connack),
                                                "subscription_identifier_available"};
    t[prop::SharedSubscriptionAvailable] = {K::Byte, bit(S::Connack),
                                            "shared_subscription_available"};
    return t;
}();

const PropertyInfo& info(uint8_t id) {
    static constexpr PropertyInfo kNone{};
    return id < kTable.size() ? kTable[id] : kNone;
}

}  // namespace

PropertyKind propertyKind(uint8_t id) {
    return info(id).kind;
}
const char* propertyName(uint8_t id) {
    return info(id).name;
}

bool propertyAllowed(uint8_t id, PropertyScope scope) {
    return (info(id).scopes & bit(scope)) != 0;
}

const PropertyView* PropertyList::find(uint8_t id) const {
    for (size_t i = 0; i < size_; ++i) {
        if ((*this)[i].id == id) return &(*this)[i];
    }
    return nullptr;
}

void PropertyList::push(const PropertyView& v) {
    if (size_ < kInline) {
        inline_[size_] = v;
    } else {
        overflow_.push_back(v);
    }
    ++size_;
    if (v.id == prop::UserProperty) ++userProperties_;
}

uint8_t parseProperties(const uint8_t* p, size_t len, PropertyScope scope, PropertyList& out) {
    out.clear();
    return detail::walkProperties(p, len, scope, [&out](const PropertyView& v) { out.push(v); });
}

uint8_t decodeProperties(const uint8_t* p, size_t len, PropertyScope scope,
                         std::vector<Property>& out) {
    return detail::walkProperties(
        p, len, scope, [&out](const PropertyView& v) { out.push_back(Property::fromView(v)); });
}

const Property* findProperty(const std::vector<Property>& props, uint8_t id) {
    for (const auto& p : props) {
        if (p.id == id) return &p;
    }
    return nullptr;
}

std::optional<uint32_t> findNumber(const std::vector<Property>& props, uint8_t id) {
    if (const Property* p = findProperty(props, id)) return p->number;
    return std::nullopt;
}

std::optional<std::string> findString(const std::vector<Property>& props, uint8_t id) {
    if (const Property* p = findProperty(props, id)) return p->str;
    return std::nullopt;
}

namespace {

// Size of one encoded property, 0 if it cannot be encoded.
size_t encodedSize(const Property& p) {
    switch (propertyKind(p.id)) {
        case PropertyKind::Byte:
            return 2;
        case PropertyKind::TwoByte:
            return 3;
        case PropertyKind::FourByte:
            return 5;
        case PropertyKind::Varint:
            return p.number <= wire::kMaxVarint ? 1 + wire::varintSize(p.number) : 0;
        case PropertyKind::Utf8:
        case PropertyKind::Binary:
            return p.str.size() <= 0xFFFF ? 3 + p.str.size() : 0;
        case PropertyKind::Pair:
            return p.str.size() <= 0xFFFF && p.str2.size() <= 0xFFFF
                       ? 5 + p.str.size() + p.str2.size()
                       : 0;
        case PropertyKind::Unknown:
            return 0;
    }
    return 0;
}

}  // namespace

size_t propertiesSize(const std::vector<Property>& props) {
    size_t total = 0;
    for (const auto& p : props) total += encodedSize(p);
    return total;
}

bool encodeProperties(const std::vector<Property>& props, std::vector<uint8_t>& out) {
    size_t total = 0;
    for (const auto& p : props) {
        const size_t n = encodedSize(p);
        if (n == 0) return false;
        total += n;
    }
    if (total > wire::kMaxVarint) return false;
    out.reserve(out.size() + wire::varintSize(uint32_t(total)) + total);
    wire::putVarint(out, uint32_t(total));
    for (const auto& p : props) {
        wire::putU8(out, p.id);
        switch (propertyKind(p.id)) {
            case PropertyKind::Byte:
                wire::putU8(out, uint8_t(p.number));
                break;
            case PropertyKind::TwoByte:
                wire::putU16(out, uint16_t(p.number));
                break;
            case PropertyKind::FourByte:
                wire::putU32(out, p.number);
                break;
            case PropertyKind::Varint:
                wire::putVarint(out, p.number);
                break;
            case PropertyKind::Utf8:
            case PropertyKind::Binary:
                wire::putPrefixed(out, p.str);
                break;
            case PropertyKind::Pair:
                wire::putPrefixed(out, p.str);
                wire::putPrefixed(out, p.str2);
                break;
            case PropertyKind::Unknown:
                break;
        }
    }
    return true;
}

}  // namespace moat::mqtt
