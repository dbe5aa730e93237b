// v5 enhanced authentication with method "jwt" in the Session (issue #24): AUTH 0x19 is a
// re-authentication handed to the connection and never forwarded; the CONNACK echoes the
// method; without the method an AUTH is a protocol error.
#include <catch2/catch.hpp>

#include "gateway/inspect/Session.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/Frame.h"
#include "policy/Policy.h"
#include "tests/unit/inspect/OneRoleRights.h"

using namespace moat;
using inspect::Session;
using inspect::Verdict;
using mqtt::ProtocolVersion;

namespace {

struct Events : inspect::SessionEvents {
    std::vector<std::string> tokens;
    int protocolErrors = 0;
    void onAuthzDenied(const char*, std::string_view, const policy::Decision&) override {}
    void onProtocolError(uint8_t, const char*) override { ++protocolErrors; }
    void onSubscriptionLimit(std::string_view) override {}
    void onReauthenticate(std::string token) override { tokens.push_back(std::move(token)); }
};

inspect::SessionOptions jwtOptions() {
    inspect::SessionOptions o;
    o.authMethod = "jwt";
    return o;
}

Verdict fromClient(Session& s, const std::vector<uint8_t>& bytes) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    return s.onClientPacket(f, bytes.data() + f.headerSize);
}

Verdict fromBroker(Session& s, const std::vector<uint8_t>& bytes) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    return s.onBrokerPacket(f, bytes.data() + f.headerSize);
}

std::vector<uint8_t> auth(uint8_t reason, std::optional<std::string> method,
                          std::optional<std::string> data) {
    mqtt::AuthPacket p;
    p.reason = reason;
    if (method)
        p.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationMethod, *method));
    if (data) p.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationData, *data));
    return mqtt::encodeAuth(p);
}

}  // namespace

TEST_CASE("AUTH 0x19 with method jwt hands the token over and is never forwarded") {
    Events e;
    Session s(ProtocolVersion::V5, test::oneRoleRights({"#"}, {"#"}, {}, "u"), jwtOptions(), e);
    auto v = fromClient(s, auth(0x19, "jwt", "a.b.c"));
    CHECK(v.kind == Verdict::Kind::Drop);
    CHECK(e.tokens == std::vector<std::string>{"a.b.c"});
    // Another method, another reason code: protocol errors.
    CHECK(fromClient(s, auth(0x19, "SCRAM", "x")).kind == Verdict::Kind::Close);
    CHECK(fromClient(s, auth(0x18, "jwt", "x")).kind == Verdict::Kind::Close);
    CHECK(e.protocolErrors == 2);
    // No token: not authorized.
    auto none = fromClient(s, auth(0x19, "jwt", std::nullopt));
    CHECK(none.kind == Verdict::Kind::Close);
    CHECK(none.disconnectReason == 0x87);
    CHECK(e.tokens.size() == 1);
}

TEST_CASE("without the jwt method an AUTH packet is a protocol error") {
    Events e;
    Session s(ProtocolVersion::V5, test::oneRoleRights({"#"}, {"#"}, {}, "u"), {}, e);
    auto v = fromClient(s, auth(0x19, "jwt", "a.b.c"));
    CHECK(v.kind == Verdict::Kind::Close);
    CHECK(v.disconnectReason == 0x82);
    CHECK(e.tokens.empty());
}

TEST_CASE("the CONNACK echoes the jwt method and drops the broker's own auth properties") {
    Events e;
    Session s(ProtocolVersion::V5, test::oneRoleRights({"#"}, {"#"}, {}, "u"), jwtOptions(), e);
    std::vector<mqtt::Property> props{
        mqtt::Property::string(mqtt::prop::AuthenticationMethod, "broker-thing")};
    auto v = fromBroker(s, mqtt::encodeConnack(ProtocolVersion::V5, false, 0, props));
    REQUIRE(v.kind == Verdict::Kind::Replace);
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(v.onward.data(), v.onward.size(), f) == mqtt::FrameStatus::Ok);
    mqtt::ConnackPacket ack;
    REQUIRE(mqtt::decodeConnack(v.onward.data() + f.headerSize, f.remainingLength,
                                ProtocolVersion::V5, ack) == 0);
    CHECK(mqtt::findString(ack.properties, mqtt::prop::AuthenticationMethod) ==
          std::optional<std::string>("jwt"));
    size_t methods = 0;
    for (const auto& p : ack.properties) methods += p.id == mqtt::prop::AuthenticationMethod;
    CHECK(methods == 1);
}
