// ConnectionPipeline after CONNECT: limits through the pipeline (hold / close), and what a
// reload or a kick does in each stage (certificate, ban, rights, will, buckets, revoking
// UNSUBSCRIBE).
#include <catch2/catch.hpp>

#include "PipelineHarness.h"

using namespace moat;
using namespace moat::inspect;
using namespace moat::test;
using mqtt::ProtocolVersion;
using K = Action::Kind;
using Stage = ConnectionPipeline::Stage;

namespace {

uint8_t disconnectReason(const Action& a) {
    REQUIRE(a.kind == K::Close);
    REQUIRE(a.toClient.size() >= 3);
    REQUIRE(a.toClient[0] == 0xE0);
    return a.toClient[2];
}

}  // namespace

TEST_CASE("pipeline limits: throttle holds the packet, disconnect closes") {
    RecordingEvents ev;
    auto opt = makeOptions();
    opt->limiter.publishRate = 1;
    opt->publishSpike = true;
    SECTION("throttle") {
        ConnectionPipeline p(opt, ev, 0);
        establish(p, ProtocolVersion::V5);
        CHECK(fromClient(p, publish("devices/sensor-1/a"), 0).kind == Verdict::Kind::Forward);
        CHECK(ev.publishes == 1);
        Verdict v = fromClient(p, publish("devices/sensor-1/a"), 0);
        CHECK(v.kind == Verdict::Kind::Hold);
        CHECK(v.holdMs >= 1000);
        CHECK(ev.publishes == 1);  // counted once, when admitted
        CHECK(ev.counts["limit:publish_rate"] == 1);
        CHECK(ev.audited("rate_limited|publish||publish_rate"));
        CHECK(fromClient(p, publish("devices/sensor-1/a"), 1001).kind == Verdict::Kind::Forward);
    }
    SECTION("disconnect") {
        opt->limiter.disconnectOnExceed = true;
        ConnectionPipeline p(opt, ev, 0);
        establish(p, ProtocolVersion::V5);
        CHECK(fromClient(p, publish("devices/sensor-1/a"), 0).kind == Verdict::Kind::Forward);
        Verdict v = fromClient(p, publish("devices/sensor-1/a"), 0);
        CHECK(v.kind == Verdict::Kind::Close);
        CHECK(v.disconnectReason == mqtt::reason::MessageRateTooHigh);
    }
    SECTION("v3 clients get no DISCONNECT") {
        opt->limiter.disconnectOnExceed = true;
        ConnectionPipeline p(opt, ev, 0);
        establish(p, ProtocolVersion::V311);
        const auto v3 = ProtocolVersion::V311;
        fromClient(p, publish("devices/sensor-1/a", 4, v3), 0);
        Verdict v = fromClient(p, publish("devices/sensor-1/a", 4, v3), 0);
        CHECK(v.kind == Verdict::Kind::Close);
        CHECK(v.disconnectReason == 0);
    }
}

TEST_CASE("reload: a certificate no longer valid, per stage") {
    RecordingEvents ev;
    SECTION("waiting for CONNECT: closed, nothing sent") {
        ConnectionPipeline p(makeOptions(), ev, 0);
        Action a = p.onReload(makeOptions(), std::string("certificate revoked"), 5);
        CHECK(a.kind == K::Close);
        CHECK(a.toClient.empty());
    }
    SECTION("checking its password: CONNACK refusal") {
        ConnectionPipeline p(makeOptions(), ev, 0);
        auto c = connectPacket(ProtocolVersion::V5, "c1");
        c.username = "alice";
        c.password = "pw";
        REQUIRE(sendConnect(p, c, withCert("alice")).kind == K::Await);
        Action a = p.onReload(makeOptions(), std::string("certificate revoked"), 5);
        REQUIRE(a.kind == K::Close);
        CHECK(a.toClient[0] == 0x20);
        CHECK(a.toClient[3] == mqtt::reason::NotAuthorized);
    }
    SECTION("established: DISCONNECT 0x98, shared with the cluster") {
        ConnectionPipeline p(makeOptions(), ev, 0);
        establish(p, ProtocolVersion::V5);
        Action a = p.onReload(makeOptions(), std::string("certificate revoked"), 5);
        CHECK(disconnectReason(a) == mqtt::reason::AdministrativeAction);
        CHECK(ev.kicks == std::vector<std::string>{"sensor-1|revoked"});
        CHECK(
            ev.audited("disconnect|||certificate no longer valid after reload: certificate "
                       "revoked"));
    }
}

TEST_CASE("reload: an identity banned since CONNECT is disconnected") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V5);
    CHECK(p.onReload(makeOptions(), std::nullopt, 5).kind == K::None);
    ev.bannedIdentities.insert("sensor-1");
    CHECK(disconnectReason(p.onReload(makeOptions(), std::nullopt, 6)) == mqtt::reason::Banned);
}

TEST_CASE("reload: no rights left") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V5);
    auto opt = makeOptions();
    opt->policy = makePolicy({"nobody/%u-x/#"}, {});
    // A policy that still grants something keeps the session; one that grants nothing ends it.
    auto none = makeOptions();
    policy::PolicySpec spec;
    std::vector<std::string> errors;
    none->policy = policy::Policy::compile(spec, errors);
    REQUIRE(none->policy);
    Action a = p.onReload(none, std::nullopt, 5);
    CHECK(disconnectReason(a) == mqtt::reason::AdministrativeAction);
    CHECK(ev.kicks == std::vector<std::string>{"sensor-1|no_rights"});
}

TEST_CASE("reload: a will no longer allowed is discarded at the broker") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    auto c = connectPacket(ProtocolVersion::V5, "sensor-1");
    c.willFlag = true;
    c.willTopic = "devices/sensor-1/status";
    REQUIRE(sendConnect(p, c, withCert("sensor-1")).kind == K::OpenBackend);
    p.onBackendConnected(1);
    fromBroker(p, mqtt::encodeConnack(ProtocolVersion::V5, false, 0, {}), 2);
    auto opt = makeOptions();
    opt->policy = makePolicy({"other/#"}, {"public/#"});
    Action a = p.onReload(opt, std::nullopt, 5);
    CHECK(disconnectReason(a) == mqtt::reason::NotAuthorized);
    // DISCONNECT 0x00 to the broker first: it then drops the will.
    REQUIRE(a.toBroker.size() >= 2);
    CHECK(a.toBroker[0] == 0xE0);
    CHECK(ev.counts["authz:will"] == 1);
}

TEST_CASE("reload: revoked subscriptions are unsubscribed at the broker") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V5);
    CHECK(fromClient(p, subscribeV5(1, "public/news"), 1).kind == Verdict::Kind::Forward);
    mqtt::SubackPacket ack;
    ack.packetId = 1;
    ack.codes = {0};
    fromBroker(p, mqtt::encodeSuback(ack, ProtocolVersion::V5), 2);
    auto opt = makeOptions();
    opt->policy = makePolicy({"devices/%u/#"}, {"devices/%u/#"});
    Action a = p.onReload(opt, std::nullopt, 5);
    CHECK(a.kind == K::None);
    REQUIRE_FALSE(a.toBroker.empty());
    CHECK((a.toBroker[0] & 0xF0) == 0xA0);  // UNSUBSCRIBE
    CHECK(ev.audited("authz_denied|subscribe|public/news|subscription revoked by reload"));
    // And the new rights hold at once.
    CHECK(fromClient(p, subscribeV5(2, "public/x"), 6).kind != Verdict::Kind::Forward);
}

TEST_CASE("reload: the buckets follow the new rates") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V5);
    for (int i = 0; i < 5; ++i)
        CHECK(fromClient(p, publish("devices/sensor-1/a"), 0).kind == Verdict::Kind::Forward);
    auto opt = makeOptions();
    opt->limiter.publishRate = 1;
    opt->limiter.disconnectOnExceed = true;
    CHECK(p.onReload(opt, std::nullopt, 1).kind == K::None);
    CHECK(fromClient(p, publish("devices/sensor-1/a"), 2).kind == Verdict::Kind::Forward);
    CHECK(fromClient(p, publish("devices/sensor-1/a"), 3).kind == Verdict::Kind::Close);
}

TEST_CASE("kick: by identity, and by certificate before authentication") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    CHECK(p.onKick("sensor-1", false, false, mqtt::reason::Banned, "banned").kind == K::None);
    CHECK(p.onKick("", true, true, mqtt::reason::AdministrativeAction, "revoked").kind == K::Close);

    ConnectionPipeline q(makeOptions(), ev, 0);
    establish(q, ProtocolVersion::V5);
    CHECK(q.onKick("other", false, false, mqtt::reason::Banned, "banned").kind == K::None);
    CHECK(q.onKick("sensor-1", true, false, mqtt::reason::Banned, "banned").kind == K::None);
    CHECK(disconnectReason(q.onKick("sensor-1", false, false, mqtt::reason::Banned, "banned")) ==
          mqtt::reason::Banned);
}
