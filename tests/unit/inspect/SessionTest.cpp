#include <catch2/catch.hpp>

#include "gateway/inspect/Session.h"
#include "gateway/mqtt/Encoder.h"
#include "policy/Policy.h"

using namespace moat;
using inspect::Session;
using inspect::Verdict;

namespace {

struct NoEvents : inspect::SessionEvents {
    void onAuthzDenied(const char*, std::string_view, const policy::Decision&) override {}
    void onProtocolError(uint8_t, const char*) override {}
    void onSubscriptionLimit(std::string_view) override {}
};

std::shared_ptr<const policy::ClientRights> rightsOnT() {
    policy::PolicySpec spec;
    policy::RoleSpec role;
    role.name = "dev";
    role.publish = {"t/#"};
    role.subscribe = {"t/#"};
    spec.roles.push_back(role);
    spec.defaultRoles = {"dev"};
    std::vector<std::string> errors;
    auto policy = policy::Policy::compile(spec, errors);
    REQUIRE(policy);
    return policy->rightsFor("d1", "d1");
}

// Feeds one whole encoded packet to the session from the client or the broker side.
Verdict feed(Session& s, const std::vector<uint8_t>& bytes, bool fromClient) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    const uint8_t* body = bytes.data() + f.headerSize;
    return fromClient ? s.onClientPacket(f, body) : s.onBrokerPacket(f, body);
}

uint16_t packetIdOf(const std::vector<uint8_t>& bytes) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    return static_cast<uint16_t>(bytes[f.headerSize] << 8 | bytes[f.headerSize + 1]);
}

}  // namespace

TEST_CASE("a gateway UNSUBSCRIBE never takes a packet id the client has in flight") {
    NoEvents events;
    Session s(mqtt::ProtocolVersion::V311, rightsOnT(), {}, events);

    // The client counts down from 0xFFFF too: a SUBSCRIBE and a QoS 1 PUBLISH in flight.
    mqtt::SubscribePacket sub;
    sub.packetId = 0xFFFF;
    sub.subscriptions.push_back({"t/a", 1});
    CHECK(feed(s, mqtt::encodeSubscribe(sub, mqtt::ProtocolVersion::V311), true).kind ==
          Verdict::Kind::Forward);
    mqtt::PublishPacket pub;
    pub.topic = "t/x";
    pub.payload = "1";
    pub.qos = 1;
    pub.packetId = 0xFFFE;
    CHECK(feed(s, mqtt::encodePublish(pub, mqtt::ProtocolVersion::V311), true).kind ==
          Verdict::Kind::Forward);

    const auto unsub = s.makeUnsubscribe({"t/a"});
    const uint16_t id = packetIdOf(unsub);
    CHECK(id == 0xFFFD);
    CHECK(packetIdOf(s.makeUnsubscribe({"t/b"})) == 0xFFFC);  // nor one it used itself

    // Its UNSUBACK is consumed; the client's SUBACK and PUBACK pass.
    mqtt::UnsubackPacket ua;
    ua.packetId = id;
    CHECK(feed(s, mqtt::encodeUnsuback(ua, mqtt::ProtocolVersion::V311), false).kind ==
          Verdict::Kind::Drop);
    mqtt::SubackPacket sa;
    sa.packetId = 0xFFFF;
    sa.codes = {1};
    CHECK(feed(s, mqtt::encodeSuback(sa, mqtt::ProtocolVersion::V311), false).kind ==
          Verdict::Kind::Forward);
}

TEST_CASE("a gateway UNSUBSCRIBE skips the client's own UNSUBSCRIBE ids until their UNSUBACK") {
    NoEvents events;
    Session s(mqtt::ProtocolVersion::V311, rightsOnT(), {}, events);
    mqtt::UnsubscribePacket unsub;
    unsub.packetId = 0xFFFF;
    unsub.filters = {"t/a"};
    CHECK(feed(s, mqtt::encodeUnsubscribe(unsub, mqtt::ProtocolVersion::V311), true).kind ==
          Verdict::Kind::Forward);
    CHECK(packetIdOf(s.makeUnsubscribe({"t/b"})) == 0xFFFE);
    // The client's UNSUBACK reaches it; the id is free again once the counter comes round.
    mqtt::UnsubackPacket ua;
    ua.packetId = 0xFFFF;
    CHECK(feed(s, mqtt::encodeUnsuback(ua, mqtt::ProtocolVersion::V311), false).kind ==
          Verdict::Kind::Forward);
}
