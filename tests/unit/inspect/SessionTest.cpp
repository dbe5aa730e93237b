#include <algorithm>
#include <catch2/catch.hpp>

#include "gateway/inspect/Session.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "policy/Policy.h"
#include "tests/unit/inspect/OneRoleRights.h"

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
    return test::oneRoleRights({"t/#"}, {"t/#"});
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

// ---------------------------------------------------------------- audit #17

namespace {

constexpr auto V5 = mqtt::ProtocolVersion::V5;
constexpr auto V311 = mqtt::ProtocolVersion::V311;

struct CountingEvents : inspect::SessionEvents {
    std::vector<uint8_t> protocolErrors;
    int denied = 0, limited = 0;
    void onAuthzDenied(const char*, std::string_view, const policy::Decision&) override {
        ++denied;
    }
    void onProtocolError(uint8_t r, const char*) override { protocolErrors.push_back(r); }
    void onSubscriptionLimit(std::string_view) override { ++limited; }
};

std::shared_ptr<const policy::ClientRights> rightsFor(std::vector<std::string> publish,
                                                      std::vector<std::string> subscribe) {
    return test::oneRoleRights(std::move(publish), std::move(subscribe));
}

std::vector<uint8_t> subscribe(mqtt::ProtocolVersion v, uint16_t id,
                               std::vector<std::string> filters) {
    mqtt::SubscribePacket sub;
    sub.packetId = id;
    for (auto& f : filters) sub.subscriptions.push_back({f, 1});
    return mqtt::encodeSubscribe(sub, v);
}

std::vector<uint8_t> suback(mqtt::ProtocolVersion v, uint16_t id, std::vector<uint8_t> codes) {
    mqtt::SubackPacket ack;
    ack.packetId = id;
    ack.codes = std::move(codes);
    return mqtt::encodeSuback(ack, v);
}

std::vector<uint8_t> connack(mqtt::ProtocolVersion v, bool sessionPresent, uint16_t aliasMax) {
    std::vector<mqtt::Property> props;
    if (v == V5 && aliasMax)
        props.push_back(mqtt::Property::integer(mqtt::prop::TopicAliasMaximum, aliasMax));
    return mqtt::encodeConnack(v, sessionPresent, 0, props);
}

std::vector<uint8_t> publish(mqtt::ProtocolVersion v, std::string topic, uint8_t qos, uint16_t id,
                             std::optional<uint16_t> alias = std::nullopt, bool dup = false) {
    mqtt::PublishPacket pub;
    pub.topic = std::move(topic);
    pub.payload = "x";
    pub.qos = qos;
    pub.packetId = id;
    pub.dup = dup;
    if (alias) pub.properties.push_back(mqtt::Property::integer(mqtt::prop::TopicAlias, *alias));
    return mqtt::encodePublish(pub, v);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

}  // namespace

TEST_CASE("a SUBSCRIBE on a packet id still awaiting its SUBACK is a protocol error") {
    for (auto v : {V5, V311}) {
        CountingEvents events;
        Session s(v, rightsOnT(), {}, events);
        CHECK(feed(s, subscribe(v, 1, {"t/a", "t/b", "t/c"}), true).kind == Verdict::Kind::Forward);
        const Verdict again = feed(s, subscribe(v, 1, {"t/y"}), true);
        CHECK(again.kind == Verdict::Kind::Close);
        CHECK(again.disconnectReason == mqtt::reason::PacketIdInUse);
        CHECK(events.protocolErrors == std::vector<uint8_t>{mqtt::reason::PacketIdInUse});
        // The first SUBSCRIBE's filters are all still known (nothing was overwritten).
        CHECK(sorted(s.subscriptions()) == std::vector<std::string>{"t/a", "t/b", "t/c"});
    }
}

TEST_CASE("an UNSUBSCRIBE on an id in use by a SUBSCRIBE or UNSUBSCRIBE is a protocol error") {
    CountingEvents events;
    Session s(V5, rightsOnT(), {}, events);
    CHECK(feed(s, subscribe(V5, 7, {"t/a"}), true).kind == Verdict::Kind::Forward);
    mqtt::UnsubscribePacket unsub;
    unsub.packetId = 7;
    unsub.filters = {"t/a"};
    CHECK(feed(s, mqtt::encodeUnsubscribe(unsub, V5), true).kind == Verdict::Kind::Close);

    Session s2(V5, rightsOnT(), {}, events);
    unsub.packetId = 8;
    CHECK(feed(s2, mqtt::encodeUnsubscribe(unsub, V5), true).kind == Verdict::Kind::Forward);
    CHECK(feed(s2, subscribe(V5, 8, {"t/a"}), true).kind == Verdict::Kind::Close);
    // Free again once answered.
    mqtt::UnsubackPacket ua;
    ua.packetId = 8;
    ua.codes = {0};
    Session s3(V5, rightsOnT(), {}, events);
    CHECK(feed(s3, mqtt::encodeUnsubscribe(unsub, V5), true).kind == Verdict::Kind::Forward);
    CHECK(feed(s3, mqtt::encodeUnsuback(ua, V5), false).kind == Verdict::Kind::Forward);
    CHECK(feed(s3, subscribe(V5, 8, {"t/a"}), true).kind == Verdict::Kind::Forward);
}

TEST_CASE("max_subscriptions counts filters still awaiting their SUBACK") {
    CountingEvents events;
    inspect::SessionOptions opts;
    opts.maxSubscriptions = 3;
    Session s(V311, rightsOnT(), opts, events);
    // Pipelined, distinct ids, before any SUBACK: only three filters reach the broker.
    CHECK(feed(s, subscribe(V311, 1, {"t/a", "t/b"}), true).kind == Verdict::Kind::Forward);
    const Verdict second = feed(s, subscribe(V311, 2, {"t/c", "t/d", "t/c"}), true);
    REQUIRE(second.kind == Verdict::Kind::Replace);
    mqtt::SubscribePacket onward;
    REQUIRE(mqtt::decodeSubscribe(second.onward.data() + 2, second.onward.size() - 2, V311,
                                  onward) == mqtt::reason::Success);
    // t/c named twice goes to the broker once; t/d refused by the limit.
    REQUIRE(onward.subscriptions.size() == 1);
    CHECK(onward.subscriptions[0].filter == "t/c");
    CHECK(events.limited == 1);
    CHECK(feed(s, subscribe(V311, 3, {"t/e"}), true).kind == Verdict::Kind::Drop);
    CHECK(s.subscriptions().size() == 3);

    // The broker's SUBACKs: the merged one tells the client which filter the limit refused.
    CHECK(feed(s, suback(V311, 1, {1, 1}), false).kind == Verdict::Kind::Forward);
    const Verdict merged = feed(s, suback(V311, 2, {1}), false);
    REQUIRE(merged.kind == Verdict::Kind::Replace);
    mqtt::SubackPacket ack;
    REQUIRE(mqtt::decodeSuback(merged.onward.data() + 2, merged.onward.size() - 2, V311, ack) ==
            mqtt::reason::Success);
    CHECK(ack.codes == std::vector<uint8_t>{1, 0x80, 1});
    CHECK(sorted(s.subscriptions()) == std::vector<std::string>{"t/a", "t/b", "t/c"});
}

TEST_CASE("a filter the broker refuses stops counting; an unsubscribed one at once") {
    CountingEvents events;
    inspect::SessionOptions opts;
    opts.maxSubscriptions = 2;
    Session s(V5, rightsOnT(), opts, events);
    CHECK(feed(s, subscribe(V5, 1, {"t/a", "t/b"}), true).kind == Verdict::Kind::Forward);
    CHECK(feed(s, suback(V5, 1, {1, 0x87}), false).kind == Verdict::Kind::Forward);
    CHECK(s.subscriptions() == std::vector<std::string>{"t/a"});
    mqtt::UnsubscribePacket unsub;
    unsub.packetId = 2;
    unsub.filters = {"t/a"};
    CHECK(feed(s, mqtt::encodeUnsubscribe(unsub, V5), true).kind == Verdict::Kind::Forward);
    CHECK(s.subscriptions().empty());
    CHECK(feed(s, subscribe(V5, 3, {"t/x", "t/y"}), true).kind == Verdict::Kind::Forward);
    CHECK(events.limited == 0);
}

TEST_CASE("a reload sees, and revokes, filters whose SUBACK has not arrived yet") {
    CountingEvents events;
    Session s(V311, rightsFor({"t/#"}, {"t/#", "u/#"}), {}, events);
    CHECK(feed(s, subscribe(V311, 1, {"t/a", "u/b"}), true).kind == Verdict::Kind::Forward);
    const auto revoked = s.replaceRights(rightsFor({"t/#"}, {"t/#"}));
    CHECK(revoked == std::vector<std::string>{"u/b"});
    const auto unsub = s.makeUnsubscribe(revoked);
    CHECK(packetIdOf(unsub) != 1);
    // The broker grants both (it saw the SUBSCRIBE first): the revoked one stays revoked.
    CHECK(feed(s, suback(V311, 1, {1, 1}), false).kind == Verdict::Kind::Forward);
    CHECK(s.subscriptions() == std::vector<std::string>{"t/a"});
}

TEST_CASE("a resumed session's deliveries are checked even with check_deliveries off") {
    for (auto v : {V5, V311}) {
        for (bool present : {false, true}) {
            CountingEvents events;
            inspect::SessionOptions opts;
            opts.checkDeliveries = false;
            Session s(v, rightsFor({"t/#"}, {"t/#"}), opts, events);
            CHECK(feed(s, connack(v, present, 0), false).kind != Verdict::Kind::Close);
            CHECK(s.resumedSession() == present);
            const Verdict d = feed(s, publish(v, "secret/x", 1, 5), false);
            if (present) {
                CHECK(d.kind == Verdict::Kind::Drop);
                CHECK(!d.reply.empty());  // PUBACK to the broker
                CHECK(events.denied == 1);
            } else {
                CHECK(d.kind == Verdict::Kind::Forward);
            }
            CHECK(feed(s, publish(v, "t/ok", 1, 6), false).kind == Verdict::Kind::Forward);
        }
    }
}

TEST_CASE("a dropped PUBLISH does not re-point the broker's topic alias") {
    CountingEvents events;
    Session s(V5, rightsFor({"t/a", "t/b"}, {"t/#"}), {}, events);
    REQUIRE(feed(s, connack(V5, false, 10), false).kind != Verdict::Kind::Close);
    CHECK(feed(s, publish(V5, "t/a", 1, 1, 1), true).kind == Verdict::Kind::Forward);
    // Denied and dropped: the broker never sees alias 1 re-pointed (it still maps t/a).
    const Verdict denied = feed(s, publish(V5, "t/denied", 1, 2, 1), true);
    CHECK(denied.kind == Verdict::Kind::Drop);
    // Alias-only: judged as the client means it, t/denied, and dropped again.
    CHECK(feed(s, publish(V5, "", 1, 3, 1), true).kind == Verdict::Kind::Drop);
    CHECK(events.denied == 2);

    // A reload revoking t/a and allowing t/denied: the alias-only use is allowed, and since
    // the broker still maps alias 1 to t/a it goes with its topic, re-pointing the alias there.
    s.replaceRights(rightsFor({"t/b", "t/denied"}, {"t/#"}));
    const Verdict sent = feed(s, publish(V5, "", 1, 4, 1), true);
    REQUIRE(sent.kind == Verdict::Kind::Replace);
    const std::string onward(sent.onward.begin(), sent.onward.end());
    CHECK(onward.find("t/denied") != std::string::npos);
    CHECK(events.denied == 2);
    // Now the broker maps it as the client does: alias-only goes as it is.
    CHECK(feed(s, publish(V5, "", 1, 5, 1), true).kind == Verdict::Kind::Forward);
    // And a revoked topic can never be reached through the alias the broker held for it.
    CHECK(feed(s, publish(V5, "t/a", 1, 6, 1), true).kind == Verdict::Kind::Drop);
    CHECK(feed(s, publish(V5, "", 1, 7, 1), true).kind == Verdict::Kind::Drop);
}

TEST_CASE("a new QoS 1/2 PUBLISH on an id whose flow is open is a protocol error") {
    CountingEvents events;
    Session s(V311, rightsOnT(), {}, events);
    CHECK(feed(s, publish(V311, "t/a", 2, 9), true).kind == Verdict::Kind::Forward);
    CHECK(feed(s, publish(V311, "t/a", 2, 9, std::nullopt, true), true).kind ==
          Verdict::Kind::Forward);  // a retransmission (DUP)
    CHECK(feed(s, publish(V311, "t/b", 1, 9), true).kind == Verdict::Kind::Close);
}

TEST_CASE("too many SUBSCRIBE filters awaiting the broker backlog the session") {
    CountingEvents events;
    inspect::SessionOptions opts;
    opts.maxSubscriptions = 100000;
    Session s(V311, rightsOnT(), opts, events);
    uint16_t id = 1;
    std::vector<std::string> filters;
    for (int i = 0; i < 1000; ++i) filters.push_back("t/" + std::to_string(i));
    while (!s.backlogged()) {
        REQUIRE(id < 100);
        CHECK(feed(s, subscribe(V311, id++, filters), true).kind == Verdict::Kind::Forward);
    }
    for (uint16_t i = 1; i < id; ++i)
        feed(s, suback(V311, i, std::vector<uint8_t>(filters.size(), 1)), false);
    CHECK(!s.backlogged());
    CHECK(s.subscriptions().size() == 1000);
}

TEST_CASE("a denied retransmission of a forwarded QoS 2 PUBLISH leaves the broker's flow alone") {
    for (auto v : {V5, V311}) {
        CountingEvents events;
        Session s(v, rightsFor({"t/#"}, {"t/#"}), {}, events);
        CHECK(feed(s, publish(v, "t/a", 2, 4), true).kind == Verdict::Kind::Forward);
        s.replaceRights(rightsFor({"u/#"}, {"t/#"}));
        const Verdict dup = feed(s, publish(v, "t/a", 2, 4, std::nullopt, true), true);
        CHECK(dup.kind == Verdict::Kind::Drop);
        CHECK(dup.reply.empty());  // no gateway PUBREC: the broker's answers the client
        // The client's PUBREL goes to the broker (not answered by the gateway).
        mqtt::AckPacket rel;
        rel.type = mqtt::PacketType::Pubrel;
        rel.packetId = 4;
        CHECK(feed(s, mqtt::encodeAck(rel, v), true).kind == Verdict::Kind::Forward);
        CHECK(s.inflight() == 1);
    }
}

TEST_CASE("a broker packet the session cannot inspect closes it (backend_malformed)") {
    struct Malformed : CountingEvents {
        std::vector<std::string> details;
        void onBackendMalformed(const char* d) override { details.emplace_back(d); }
    };
    auto closes = [](const std::vector<uint8_t>& bytes, mqtt::ProtocolVersion v) {
        Malformed events;
        Session s(v, rightsOnT(), {}, events);
        const Verdict verdict = feed(s, bytes, false);
        return verdict.kind == Verdict::Kind::Close &&
               verdict.disconnectReason == mqtt::reason::UnspecifiedError &&
               events.details.size() == 1;
    };
    CHECK(closes(publish(V5, "", 0, 0, 3), V5));                  // alias never set
    CHECK(closes(subscribe(V5, 1, {"t/a"}), V5));                 // a client's packet type
    CHECK(closes(std::vector<uint8_t>{0x90, 0x01, 0x00}, V311));  // SUBACK too short
    CHECK(closes(std::vector<uint8_t>{0x36, 0x05, 0, 1, 't', 0, 1}, V311));  // QoS 3
    CHECK(closes(std::vector<uint8_t>{0xE0, 0x00}, V311));                   // v3 DISCONNECT
    CHECK(closes(std::vector<uint8_t>{0xD0, 0x01, 0x00}, V311));             // PINGRESP with a body
    CHECK(!closes(std::vector<uint8_t>{0xD0, 0x00}, V311));
    CHECK(!closes(std::vector<uint8_t>{0xE0, 0x01, 0x8E}, V5));  // session taken over
    CHECK(!closes(publish(V5, "t/a", 1, 2, 3), V5));
}

TEST_CASE("merged SUBACKs awaiting the broker backlog the session too") {
    CountingEvents events;
    Session s(V311, rightsOnT(), {}, events);
    // One allowed filter, many denied ones: little to record, a large SUBACK to merge.
    std::vector<std::string> filters{"t/a"};
    for (int i = 0; i < 20000; ++i) filters.push_back("x");
    uint16_t id = 1;
    while (!s.backlogged()) {
        REQUIRE(id < 100);
        CHECK(feed(s, subscribe(V311, id++, filters), true).kind == Verdict::Kind::Replace);
    }
    for (uint16_t i = 1; i < id; ++i)
        CHECK(feed(s, suback(V311, i, {1}), false).kind == Verdict::Kind::Replace);
    CHECK(!s.backlogged());
}

TEST_CASE(
    "a 3.1.1-only broker's refusal of a v5 CONNECT is relayed; other undecodable CONNACKs close") {
    CountingEvents events;
    Session s(V5, rightsFor({"t/#"}, {"t/#"}), {}, events);
    // CONNACK, remaining length 2, flags 0, return code 1 (unacceptable protocol version).
    CHECK(feed(s, {0x20, 0x02, 0x00, 0x01}, false).kind == Verdict::Kind::Forward);
    Session t(V5, rightsFor({"t/#"}, {"t/#"}), {}, events);
    // Return code 0 in the 3.1.1 shape would be an acceptance without properties: malformed.
    CHECK(feed(t, {0x20, 0x02, 0x00, 0x00}, false).kind == Verdict::Kind::Close);
}

TEST_CASE("a filter named many times in one SUBSCRIBE reaches the broker once") {
    CountingEvents events;
    Session s(V5, rightsOnT(), {}, events);
    std::vector<std::string> filters(2000, "t/retained");
    filters.push_back("t/other");
    filters.push_back("denied/x");
    const Verdict v = feed(s, subscribe(V5, 7, filters), true);
    REQUIRE(v.kind == Verdict::Kind::Replace);
    mqtt::SubscribePacket onward;
    REQUIRE(mqtt::decodeSubscribe(v.onward.data() + 2, v.onward.size() - 2, V5, onward) ==
            mqtt::reason::Success);
    REQUIRE(onward.subscriptions.size() == 2);
    CHECK(onward.subscriptions[0].filter == "t/retained");
    CHECK(onward.subscriptions[1].filter == "t/other");
    // The broker's two codes are spread back over the client's 2002 entries, in its order.
    const Verdict merged = feed(s, suback(V5, 7, {1, 0}), false);
    REQUIRE(merged.kind == Verdict::Kind::Replace);
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(merged.onward.data(), merged.onward.size(), f) ==
            mqtt::FrameStatus::Ok);
    mqtt::SubackPacket ack;
    REQUIRE(mqtt::decodeSuback(merged.onward.data() + f.headerSize, f.remainingLength, V5, ack) ==
            mqtt::reason::Success);
    REQUIRE(ack.codes.size() == 2002);
    CHECK(ack.codes[0] == 1);
    CHECK(ack.codes[1999] == 1);
    CHECK(ack.codes[2000] == 0);
    CHECK(ack.codes[2001] == mqtt::reason::NotAuthorized);
}
