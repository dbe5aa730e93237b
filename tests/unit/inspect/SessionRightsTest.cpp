// Retain and QoS rights in the session (CONTRACT §3): PUBLISH, SUBSCRIBE, CONNACK, wills.
#include <catch2/catch.hpp>

#include "gateway/inspect/Session.h"
#include "gateway/inspect/WillRights.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "policy/Policy.h"

using namespace moat;
using inspect::Session;
using inspect::Verdict;
using V = mqtt::ProtocolVersion;

namespace {

struct Events : inspect::SessionEvents {
    std::vector<std::string> denied;  // "topic|rule"
    void onAuthzDenied(const char*, std::string_view topic, const policy::Decision& d) override {
        denied.push_back(std::string(topic) + "|" + d.describe());
    }
    void onRightsDenied(std::string_view topic, std::string_view rule, const char*) override {
        denied.push_back(std::string(topic) + "|" + std::string(rule));
    }
    void onProtocolError(uint8_t, const char*) override {}
    void onSubscriptionLimit(std::string_view) override {}
};

policy::RoleSpec role(std::string name, std::vector<std::string> publish,
                      std::optional<std::vector<std::string>> retain, uint8_t maxQos = 2) {
    policy::RoleSpec r;
    r.name = std::move(name);
    r.publish = std::move(publish);
    r.subscribe = {"s/#"};
    if (retain) {
        r.hasRetain = true;
        r.retain = *retain;
    }
    r.maxQos = maxQos;
    return r;
}

std::shared_ptr<const policy::ClientRights> rightsOf(std::vector<policy::RoleSpec> roles) {
    policy::PolicySpec spec;
    for (auto& r : roles) spec.defaultRoles.push_back(r.name);
    spec.roles = std::move(roles);
    std::vector<std::string> errors;
    auto p = policy::Policy::compile(spec, errors);
    REQUIRE(p);
    return p->rightsFor("d1", "d1");
}

Verdict feed(Session& s, const std::vector<uint8_t>& bytes, bool fromClient) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    const uint8_t* body = bytes.data() + f.headerSize;
    return fromClient ? s.onClientPacket(f, body) : s.onBrokerPacket(f, body);
}

Verdict publish(Session& s, V v, std::string topic, uint8_t qos, bool retain, uint16_t id = 1) {
    mqtt::PublishPacket p;
    p.topic = std::move(topic);
    p.payload = "x";
    p.qos = qos;
    p.retain = retain;
    p.packetId = qos ? id : 0;
    return feed(s, mqtt::encodePublish(p, v), true);
}

mqtt::ConnackPacket connack(Session& s, std::vector<mqtt::Property> props = {}) {
    Verdict v = feed(s, mqtt::encodeConnack(V::V5, false, 0, props), false);
    const std::vector<uint8_t> bytes =
        v.kind == Verdict::Kind::Replace ? v.onward : mqtt::encodeConnack(V::V5, false, 0, props);
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    mqtt::ConnackPacket out;
    REQUIRE(mqtt::decodeConnack(bytes.data() + f.headerSize, f.remainingLength, V::V5, out) == 0);
    return out;
}

}  // namespace

TEST_CASE("policy: retain needs one role granting both the publish and the retain") {
    auto r = rightsOf({role("a", {"a/#"}, std::vector<std::string>{}),  // publish, no retain
                       role("b", {"b/#"}, std::vector<std::string>{"a/#", "b/status"}),
                       role("c", {"c/#"}, std::nullopt)});  // absent: wherever it publishes
    CHECK_FALSE(r->checkRetain("a/x").allowed);             // b's retain does not widen a's publish
    CHECK(r->checkRetain("b/status").allowed);
    CHECK(r->checkRetain("b/status").describe() == "role b retain[1]");
    CHECK_FALSE(r->checkRetain("b/other").allowed);
    CHECK(r->checkRetain("c/x/y").describe() == "role c publish[0]");
    CHECK(r->hasAnyRetain());
    CHECK(r->retainRestricted());
}

TEST_CASE("policy: max_qos is the highest of the roles; absent = 2") {
    CHECK(rightsOf({role("a", {"a"}, std::nullopt, 0), role("b", {"b"}, std::nullopt, 1)})
              ->maxQos() == 1);
    CHECK(rightsOf({role("a", {"a"}, std::nullopt, 0), role("b", {"b"}, std::nullopt)})->maxQos() ==
          2);
    auto none = rightsOf({role("a", {"a/#"}, std::vector<std::string>{}, 0)});
    CHECK_FALSE(none->hasAnyRetain());
    CHECK(none->maxQos() == 0);
}

TEST_CASE("policy: placeholder retain rules expand per client, unsafe values drop them") {
    policy::PolicySpec spec;
    spec.roles.push_back(role("dev", {"d/%u/#"}, std::vector<std::string>{"d/%u/status"}));
    spec.defaultRoles = {"dev"};
    std::vector<std::string> errors;
    auto p = policy::Policy::compile(spec, errors);
    REQUIRE(p);
    auto r = p->rightsFor("d1", "c");
    CHECK(r->checkRetain("d/d1/status").allowed);
    CHECK_FALSE(r->checkRetain("d/d1/t").allowed);
    CHECK_FALSE(r->checkRetain("d/d2/status").allowed);
    CHECK_FALSE(p->rightsFor("a+b", "c")->hasAnyRetain());
}

TEST_CASE("session: a retained PUBLISH outside the retain rights is a denied publish") {
    for (V v : {V::V311, V::V5}) {
        Events ev;
        Session s(v, rightsOf({role("a", {"t/#"}, std::vector<std::string>{"t/status"})}), {}, ev);
        CHECK(publish(s, v, "t/status", 1, true).kind == Verdict::Kind::Forward);
        Verdict d = publish(s, v, "t/data", 1, true, 2);
        CHECK(d.kind == Verdict::Kind::Drop);  // not forwarded: never stored
        CHECK_FALSE(d.reply.empty());          // PUBACK (0x87 on v5)
        CHECK(ev.denied == std::vector<std::string>{"t/data|retain"});
        CHECK(publish(s, v, "t/data", 1, false, 3).kind == Verdict::Kind::Forward);
    }
}

TEST_CASE("session: v5 Retain Available 0 when no retain right, then a retained PUBLISH is 0x9A") {
    Events ev;
    Session s(V::V5, rightsOf({role("a", {"t/#"}, std::vector<std::string>{})}), {}, ev);
    auto ack = connack(s);
    CHECK(mqtt::findNumber(ack.properties, mqtt::prop::RetainAvailable) == 0u);
    CHECK_FALSE(mqtt::findNumber(ack.properties, mqtt::prop::MaximumQos));
    Verdict v = publish(s, V::V5, "t/x", 0, true);
    CHECK(v.kind == Verdict::Kind::Close);
    CHECK(v.disconnectReason == mqtt::reason::RetainNotSupported);
}

TEST_CASE("session: roles that never mention retain keep the broker's CONNACK") {
    Events ev;
    Session s(V::V5, rightsOf({role("a", {}, std::nullopt)}), {}, ev);  // subscribe only
    Verdict v = feed(s, mqtt::encodeConnack(V::V5, false, 0, {}), false);
    CHECK(v.kind == Verdict::Kind::Forward);
}

TEST_CASE("session: v5 Maximum QoS announced; a PUBLISH above it is 0x9B, v3 a denied publish") {
    Events ev;
    Session s(V::V5, rightsOf({role("a", {"t/#"}, std::nullopt, 1)}), {}, ev);
    // The broker's own lower limit wins.
    auto ack = connack(s);
    CHECK(mqtt::findNumber(ack.properties, mqtt::prop::MaximumQos) == 1u);
    CHECK_FALSE(mqtt::findNumber(ack.properties, mqtt::prop::RetainAvailable));
    CHECK(publish(s, V::V5, "t/x", 1, false).kind == Verdict::Kind::Forward);
    Verdict v = publish(s, V::V5, "t/x", 2, false, 2);
    CHECK(v.kind == Verdict::Kind::Close);
    CHECK(v.disconnectReason == mqtt::reason::QosNotSupported);

    Events ev0;
    Session b(V::V5, rightsOf({role("a", {"t/#"}, std::nullopt, 1)}), {}, ev0);
    auto lower = connack(b, {mqtt::Property::integer(mqtt::prop::MaximumQos, 0)});
    CHECK(mqtt::findNumber(lower.properties, mqtt::prop::MaximumQos) == 0u);

    Events ev3;
    Session s3(V::V311, rightsOf({role("a", {"t/#"}, std::nullopt, 0)}), {}, ev3);
    Verdict d = publish(s3, V::V311, "t/x", 1, false);
    CHECK(d.kind == Verdict::Kind::Drop);
    CHECK(ev3.denied == std::vector<std::string>{"t/x|max_qos 0"});
}

TEST_CASE("session: a SUBSCRIBE above max_qos is forwarded at max_qos") {
    for (V v : {V::V311, V::V5}) {
        Events ev;
        Session s(v, rightsOf({role("a", {"t/#"}, std::nullopt, 1)}), {}, ev);
        mqtt::SubscribePacket sub;
        sub.packetId = 7;
        sub.subscriptions.push_back({"s/a", 2});
        sub.subscriptions.push_back({"s/b", 0});
        sub.subscriptions.push_back({"nope", 2});
        if (v == V::V5) sub.subscriptions[0].options |= 0x04;  // other options kept
        Verdict out = feed(s, mqtt::encodeSubscribe(sub, v), true);
        REQUIRE(out.kind == Verdict::Kind::Replace);
        mqtt::Frame f;
        REQUIRE(mqtt::parseFrame(out.onward.data(), out.onward.size(), f) == mqtt::FrameStatus::Ok);
        mqtt::SubscribePacket onward;
        REQUIRE(mqtt::decodeSubscribe(out.onward.data() + f.headerSize, f.remainingLength, v,
                                      onward) == 0);
        REQUIRE(onward.subscriptions.size() == 2);
        CHECK(onward.subscriptions[0].qos() == 1);
        CHECK(onward.subscriptions[0].noLocal() == (v == V::V5));
        CHECK(onward.subscriptions[1].qos() == 0);
        // The broker grants what it was asked; the client gets its codes in its own order.
        mqtt::SubackPacket ack;
        ack.packetId = 7;
        ack.codes = {1, 0};
        Verdict merged = feed(s, mqtt::encodeSuback(ack, v), false);
        REQUIRE(merged.kind == Verdict::Kind::Replace);
    }
}

TEST_CASE("wills beyond the retain / QoS rights are refused with 0x9B / 0x9A") {
    auto r = rightsOf({role("a", {"t/#"}, std::vector<std::string>{"t/status"}, 1)});
    CHECK(inspect::checkWillRights(*r, "t/status", 1, true).allowed);
    auto q = inspect::checkWillRights(*r, "t/status", 2, false);
    CHECK_FALSE(q.allowed);
    CHECK(q.v5Reason == 0x9B);
    auto k = inspect::checkWillRights(*r, "t/lwt", 0, true);
    CHECK_FALSE(k.allowed);
    CHECK(k.v5Reason == 0x9A);
    CHECK(mqtt::v3ConnackCodeFor(0x9A) == 0x05);
    CHECK(mqtt::v3ConnackCodeFor(0x9B) == 0x05);
}

TEST_CASE("session: the effective session expiry follows the CONNACK and the DISCONNECT") {
    Events ev;
    inspect::SessionOptions o;
    o.sessionExpiry = 60;
    Session s(V::V5, rightsOf({role("a", {"t/#"}, std::nullopt)}), o, ev);
    connack(s, {mqtt::Property::integer(mqtt::prop::SessionExpiryInterval, 30)});
    CHECK(s.sessionExpiry() == 30);
    CHECK(feed(s,
               mqtt::encodeDisconnect(
                   V::V5, 0, {mqtt::Property::integer(mqtt::prop::SessionExpiryInterval, 0)}),
               true)
              .kind == Verdict::Kind::Forward);
    CHECK(s.sessionExpiry() == 0);
}

TEST_CASE("session: a resumed session's stored subscriptions count towards max_subscriptions") {
    for (bool present : {true, false}) {
        Events ev;
        inspect::SessionOptions o;
        o.maxSubscriptions = 2;
        o.storedSubscriptions = {"s/a", "s/b"};
        Session s(V::V311, rightsOf({role("a", {"t/#"}, std::nullopt)}), o, ev);
        CHECK(feed(s, mqtt::encodeConnack(V::V311, present, 0, {}), false).kind ==
              Verdict::Kind::Forward);
        mqtt::SubscribePacket sub;
        sub.packetId = 1;
        sub.subscriptions.push_back({"s/c", 0});
        Verdict v = feed(s, mqtt::encodeSubscribe(sub, V::V311), true);
        CHECK((v.kind == Verdict::Kind::Drop) == present);  // SUBACK 0x80 from the gateway
        CHECK(s.subscriptions().size() == (present ? 2u : 1u));
    }
}
