// The broker is checked too (CONTRACT §3): a broker packet Moat cannot decode, a type a
// broker never sends, or a PUBLISH with an unknown topic alias is never passed on.
#include <catch2/catch.hpp>

#include "gateway/inspect/Session.h"
#include "gateway/mqtt/Encoder.h"
#include "policy/Policy.h"
#include "tests/unit/inspect/OneRoleRights.h"

using namespace moat;
using inspect::Session;
using inspect::Verdict;
using mqtt::ProtocolVersion;

namespace {

struct Events : inspect::SessionEvents {
    int malformed = 0;
    void onAuthzDenied(const char*, std::string_view, const policy::Decision&) override {}
    void onProtocolError(uint8_t, const char*) override {}
    void onSubscriptionLimit(std::string_view) override {}
    void onBackendMalformed(const char*) override { ++malformed; }
};

std::shared_ptr<const policy::ClientRights> allRights() {
    return test::oneRoleRights({"#"}, {"#"}, {}, "u");
}

Verdict fromBroker(Session& s, std::vector<uint8_t> bytes) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    return s.onBrokerPacket(f, bytes.data() + f.headerSize);
}

void expectClosed(const Verdict& v, Events& e, int before) {
    CHECK(v.kind == Verdict::Kind::Close);
    CHECK(v.disconnectReason == 0x80);
    CHECK(e.malformed == before + 1);
}

}  // namespace

TEST_CASE("undecodable broker packets close the client, never pass unchecked") {
    for (ProtocolVersion v : {ProtocolVersion::V311, ProtocolVersion::V5}) {
        INFO(mqtt::versionName(v));
        Events e;
        Session s(v, allRights(), {}, e);
        // PUBLISH whose topic length runs past the body.
        expectClosed(fromBroker(s, {0x30, 0x04, 0x00, 0x09, 'a', 'b'}), e, 0);
        // PUBLISH with a wildcard topic.
        expectClosed(fromBroker(s, {0x30, 0x05, 0x00, 0x03, 'a', '/', '#'}), e, 1);
        // CONNACK too short.
        expectClosed(fromBroker(s, {0x20, 0x01, 0x00}), e, 2);
        // SUBACK without codes, UNSUBACK too short, PUBACK too short.
        expectClosed(fromBroker(s, {0x90, 0x02, 0x00, 0x01}), e, 3);
        expectClosed(fromBroker(s, {0xB0, 0x01, 0x00}), e, 4);
        expectClosed(fromBroker(s, {0x40, 0x01, 0x00}), e, 5);
        // PUBREL with the wrong fixed-header flags.
        expectClosed(fromBroker(s, {0x60, 0x02, 0x00, 0x01}), e, 6);
        // Types a broker never sends.
        expectClosed(fromBroker(s, {0xC0, 0x00}), e, 7);  // PINGREQ
        expectClosed(fromBroker(s, {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}), e, 8);
        expectClosed(fromBroker(s, {0x10, 0x00}), e, 9);         // CONNECT
        expectClosed(fromBroker(s, {0xD0, 0x01, 0x00}), e, 10);  // PINGRESP body
        // The well-formed ones pass.
        CHECK(fromBroker(s, {0xD0, 0x00}).kind == Verdict::Kind::Forward);
        CHECK(fromBroker(s, {0x40, 0x02, 0x00, 0x01}).kind == Verdict::Kind::Forward);
        CHECK(fromBroker(s, {0x30, static_cast<uint8_t>(v == ProtocolVersion::V5 ? 4 : 3), 0x00,
                             0x01, 'a', 0x00})
                  .kind == Verdict::Kind::Forward);
    }
}

TEST_CASE("a v3 DISCONNECT from the broker, and a v5 PUBLISH with an unknown alias, close") {
    Events e;
    Session v3(ProtocolVersion::V311, allRights(), {}, e);
    expectClosed(fromBroker(v3, {0xE0, 0x00}), e, 0);

    Session v5(ProtocolVersion::V5, allRights(), {}, e);
    mqtt::PublishPacket pub;
    pub.topic = "";
    pub.payload = "x";
    pub.properties.push_back(mqtt::Property::integer(mqtt::prop::TopicAlias, 3));
    expectClosed(fromBroker(v5, mqtt::encodePublish(pub, ProtocolVersion::V5)), e, 1);
    // Once the broker set the alias, it resolves.
    pub.topic = "t/a";
    CHECK(fromBroker(v5, mqtt::encodePublish(pub, ProtocolVersion::V5)).kind ==
          Verdict::Kind::Forward);
    pub.topic = "";
    CHECK(fromBroker(v5, mqtt::encodePublish(pub, ProtocolVersion::V5)).kind ==
          Verdict::Kind::Forward);
    CHECK(fromBroker(v5, {0xE0, 0x01, 0x8B}).kind == Verdict::Kind::Forward);
}

TEST_CASE("a 3.1.1-only broker's refusal of a v5 CONNECT is relayed as it is") {
    Events e;
    Session v5(ProtocolVersion::V5, allRights(), {}, e);
    CHECK(fromBroker(v5, {0x20, 0x02, 0x00, 0x01}).kind == Verdict::Kind::Forward);
    CHECK(e.malformed == 0);
    // An acceptance in 3.1.1 form is no v5 CONNACK: never passed on.
    Session other(ProtocolVersion::V5, allRights(), {}, e);
    expectClosed(fromBroker(other, {0x20, 0x02, 0x00, 0x00}), e, 0);
}
