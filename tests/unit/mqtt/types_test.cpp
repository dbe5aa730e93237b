#include <string>

#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;

TEST_CASE("packet type and version names are the metric labels") {
    CHECK(std::string(packetTypeName(PacketType::Connect)) == "CONNECT");
    CHECK(std::string(packetTypeName(PacketType::Publish)) == "PUBLISH");
    CHECK(std::string(packetTypeName(PacketType::Unsuback)) == "UNSUBACK");
    CHECK(std::string(packetTypeName(PacketType::Auth)) == "AUTH");
    CHECK(std::string(packetTypeName(PacketType(0))) == "RESERVED");
    CHECK(std::string(versionName(ProtocolVersion::V31)) == "3.1");
    CHECK(std::string(versionName(ProtocolVersion::V311)) == "3.1.1");
    CHECK(std::string(versionName(ProtocolVersion::V5)) == "5.0");
}

TEST_CASE("reason names are snake_case labels") {
    CHECK(std::string(reasonName(reason::Success)) == "success");
    CHECK(std::string(reasonName(reason::MalformedPacket)) == "malformed_packet");
    CHECK(std::string(reasonName(reason::ProtocolError)) == "protocol_error");
    CHECK(std::string(reasonName(reason::TopicNameInvalid)) == "topic_name_invalid");
    CHECK(std::string(reasonName(reason::Banned)) == "banned");
    CHECK(std::string(reasonName(reason::WildcardSubscriptionsNotSupported)) ==
          "wildcard_subscriptions_not_supported");
    CHECK(std::string(reasonName(0x03)) == "unknown");
    for (int c = 0x80; c <= 0xA2; ++c) {
        const std::string name = reasonName(uint8_t(c));
        CHECK(name != "unknown");
        CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos);
    }
}

TEST_CASE("v5 refusal reasons map to v3 CONNACK return codes") {
    CHECK(v3ConnackCodeFor(reason::Success) == v3::Accepted);
    CHECK(v3ConnackCodeFor(reason::BadUsernameOrPassword) == 4);
    CHECK(v3ConnackCodeFor(reason::NotAuthorized) == 5);
    CHECK(v3ConnackCodeFor(reason::Banned) == 5);
    CHECK(v3ConnackCodeFor(reason::QuotaExceeded) == 5);
    CHECK(v3ConnackCodeFor(reason::ServerUnavailable) == 3);
    CHECK(v3ConnackCodeFor(reason::ServerBusy) == 3);
    CHECK(v3ConnackCodeFor(reason::UnsupportedProtocolVersion) == 1);
    CHECK(v3ConnackCodeFor(reason::ClientIdentifierNotValid) == 2);
}

TEST_CASE("reason codes allowed per packet type") {
    CHECK(validReasonFor(PacketType::Puback, reason::NotAuthorized));
    CHECK(validReasonFor(PacketType::Puback, reason::NoMatchingSubscribers));
    CHECK_FALSE(validReasonFor(PacketType::Puback, reason::PacketIdNotFound));
    CHECK(validReasonFor(PacketType::Pubrel, reason::PacketIdNotFound));
    CHECK_FALSE(validReasonFor(PacketType::Pubrel, reason::NotAuthorized));
    CHECK(validReasonFor(PacketType::Disconnect, reason::ServerShuttingDown));
    CHECK_FALSE(validReasonFor(PacketType::Connack, reason::ServerShuttingDown));
    CHECK(validReasonFor(PacketType::Suback, reason::GrantedQos2));
    CHECK(validReasonFor(PacketType::Auth, reason::ContinueAuthentication));
    CHECK_FALSE(validReasonFor(PacketType::Publish, 0));
}
