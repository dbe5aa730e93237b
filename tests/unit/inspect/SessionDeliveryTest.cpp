// Subscriptions over a denied branch (CONTRACT §3): granted, the branch withheld at delivery
// with the broker's QoS 1/2 flows completed by the gateway.
#include <catch2/catch.hpp>

#include "gateway/inspect/Session.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "policy/Policy.h"
#include "tests/unit/inspect/OneRoleRights.h"

using namespace moat;
using inspect::Session;
using inspect::Verdict;
using mqtt::ProtocolVersion;

namespace {

struct RecordingEvents : inspect::SessionEvents {
    std::vector<std::string> denied;  // "action topic"
    std::vector<uint8_t> protocolErrors;
    void onAuthzDenied(const char* action, std::string_view topic,
                       const policy::Decision&) override {
        denied.push_back(std::string(action) + " " + std::string(topic));
    }
    void onProtocolError(uint8_t reason, const char*) override { protocolErrors.push_back(reason); }
    void onSubscriptionLimit(std::string_view) override {}
};

std::shared_ptr<const policy::ClientRights> hashWithDeniedBranch() {
    return test::oneRoleRights({"#"}, {"#"}, {"test/nosubscribe"}, "u");
}

Verdict feed(Session& s, const std::vector<uint8_t>& bytes, bool fromClient) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    const uint8_t* body = bytes.data() + f.headerSize;
    return fromClient ? s.onClientPacket(f, body) : s.onBrokerPacket(f, body);
}

std::vector<uint8_t> subscribe(ProtocolVersion v, uint16_t id, std::string filter) {
    mqtt::SubscribePacket sub;
    sub.packetId = id;
    sub.subscriptions.push_back({std::move(filter), 2});
    return mqtt::encodeSubscribe(sub, v);
}

std::vector<uint8_t> publish(ProtocolVersion v, std::string topic, uint8_t qos, uint16_t id,
                             bool retain = false) {
    mqtt::PublishPacket pub;
    pub.topic = std::move(topic);
    pub.payload = "x";
    pub.qos = qos;
    pub.packetId = id;
    pub.retain = retain;
    return mqtt::encodePublish(pub, v);
}

// The reply's packet type and packet id.
std::pair<uint8_t, uint16_t> ackOf(const std::vector<uint8_t>& bytes) {
    REQUIRE(bytes.size() >= 4);
    return {static_cast<uint8_t>(bytes[0] >> 4), static_cast<uint16_t>(bytes[2] << 8 | bytes[3])};
}

}  // namespace

TEST_CASE("SUBSCRIBE # over a denied branch is granted; the branch is withheld at delivery") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5}) {
        INFO(mqtt::versionName(v));
        RecordingEvents events;
        Session s(v, hashWithDeniedBranch(), {}, events);
        CHECK(feed(s, subscribe(v, 1, "#"), true).kind == Verdict::Kind::Forward);
        CHECK(feed(s, subscribe(v, 2, "+/+"), true).kind == Verdict::Kind::Forward);
        CHECK(events.denied.empty());
        // Entirely inside the denied branch: still refused, by the gateway alone.
        Verdict refused = feed(s, subscribe(v, 3, "test/nosubscribe"), true);
        CHECK(refused.kind == Verdict::Kind::Drop);
        REQUIRE(refused.reply.size() >= 5);
        CHECK(refused.reply.back() == (v == ProtocolVersion::V5 ? 0x87 : 0x80));

        // Allowed deliveries pass untouched.
        CHECK(feed(s, publish(v, "test/ok", 1, 10), false).kind == Verdict::Kind::Forward);

        // QoS 0 on the branch: dropped.
        Verdict q0 = feed(s, publish(v, "test/nosubscribe", 0, 0, true), false);
        CHECK(q0.kind == Verdict::Kind::Drop);
        CHECK(q0.reply.empty());
        // QoS 1: dropped, PUBACK to the broker.
        Verdict q1 = feed(s, publish(v, "test/nosubscribe", 1, 11), false);
        CHECK(q1.kind == Verdict::Kind::Drop);
        CHECK(ackOf(q1.reply) == std::pair<uint8_t, uint16_t>{4, 11});
        // QoS 2: dropped, PUBREC to the broker, then PUBCOMP for its PUBREL.
        Verdict q2 = feed(s, publish(v, "test/nosubscribe", 2, 12, true), false);
        CHECK(q2.kind == Verdict::Kind::Drop);
        CHECK(ackOf(q2.reply) == std::pair<uint8_t, uint16_t>{5, 12});
        mqtt::AckPacket rel;
        rel.type = mqtt::PacketType::Pubrel;
        rel.packetId = 12;
        Verdict comp = feed(s, mqtt::encodeAck(rel, v), false);
        CHECK(comp.kind == Verdict::Kind::Drop);
        CHECK(ackOf(comp.reply) == std::pair<uint8_t, uint16_t>{7, 12});
        // The client's own QoS 2 flow with another id is not touched.
        rel.packetId = 13;
        CHECK(feed(s, mqtt::encodeAck(rel, v), false).kind == Verdict::Kind::Forward);

        CHECK(events.denied ==
              std::vector<std::string>{"subscribe test/nosubscribe", "deliver test/nosubscribe",
                                       "deliver test/nosubscribe", "deliver test/nosubscribe"});
        // A reload keeps the filtered grant.
        CHECK(s.replaceRights(hashWithDeniedBranch()).empty());
    }
}

TEST_CASE("overlap is refused without delivery checks, and for shared subscriptions") {
    RecordingEvents events;
    inspect::SessionOptions off;
    off.checkDeliveries = false;
    Session s(ProtocolVersion::V311, hashWithDeniedBranch(), off, events);
    Verdict v = feed(s, subscribe(ProtocolVersion::V311, 1, "#"), true);
    CHECK(v.kind == Verdict::Kind::Drop);
    CHECK(v.reply.back() == 0x80);

    Session on(ProtocolVersion::V5, hashWithDeniedBranch(), {}, events);
    Verdict shared = feed(on, subscribe(ProtocolVersion::V5, 1, "$share/g/#"), true);
    CHECK(shared.kind == Verdict::Kind::Drop);
    CHECK(shared.reply.back() == 0x87);
    CHECK(feed(on, subscribe(ProtocolVersion::V5, 2, "$share/g/test/ok"), true).kind ==
          Verdict::Kind::Forward);
}

TEST_CASE("a reload turning check_deliveries off revokes the filtered grant, never opens it") {
    RecordingEvents events;
    const ProtocolVersion v = ProtocolVersion::V311;
    Session s(v, hashWithDeniedBranch(), {}, events);
    CHECK(feed(s, subscribe(v, 1, "#"), true).kind == Verdict::Kind::Forward);
    mqtt::SubackPacket ack;
    ack.packetId = 1;
    ack.codes = {2};
    CHECK(feed(s, mqtt::encodeSuback(ack, v), false).kind == Verdict::Kind::Forward);
    REQUIRE(s.subscriptions() == std::vector<std::string>{"#"});

    s.setCheckDeliveries(false);
    CHECK(s.replaceRights(hashWithDeniedBranch()) == std::vector<std::string>{"#"});
    // Until the broker has processed the UNSUBSCRIBE, the denied branch stays withheld.
    CHECK(feed(s, publish(v, "test/nosubscribe", 1, 20), false).kind == Verdict::Kind::Drop);
    CHECK(feed(s, publish(v, "test/ok", 1, 21), false).kind == Verdict::Kind::Forward);
}
