// ConnectionPipeline at CONNECT: first packet, keepalive clamp, certificate factor and its
// re-verification, password check (Await / onJobDone), bans, will ACL, credential rewrite,
// backend failures, the broker's CONNACK and the deadlines before it.
#include <catch2/catch.hpp>

#include "PipelineHarness.h"

using namespace moat;
using namespace moat::inspect;
using namespace moat::test;
using mqtt::ProtocolVersion;
using K = Action::Kind;
using Stage = ConnectionPipeline::Stage;

namespace {

// The CONNACK code a refusal sends the client.
uint8_t connackCode(const Action& a) {
    REQUIRE(a.kind == K::Close);
    REQUIRE(a.toClient.size() >= 4);
    REQUIRE(a.toClient[0] == 0x20);
    return a.toClient[3];
}

mqtt::ConnectPacket passwordConnect(ProtocolVersion v, std::string user, std::string pw) {
    auto c = connectPacket(v, "c1");
    c.username = std::move(user);
    c.password = std::move(pw);
    return c;
}

}  // namespace

TEST_CASE("pipeline: the first packet must be CONNECT") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    const auto bytes = mqtt::encodePingreq();
    const auto f = frameOf(bytes);
    Action a = p.onConnect(f, bytes.data() + f.headerSize, bytes.data(), {}, 0);
    CHECK(a.kind == K::CloseNow);
    CHECK(ev.counts["proto:protocol_error"] == 1);
    CHECK(p.stage() == Stage::Closed);
}

TEST_CASE("pipeline: an unsupported protocol level is refused with v3 return code 1") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    auto bytes = mqtt::encodeConnect(connectPacket(ProtocolVersion::V311, "c"));
    const auto f = frameOf(bytes);
    bytes[f.headerSize + 6] = 9;  // protocol level
    Action a = p.onConnect(f, bytes.data() + f.headerSize, bytes.data(), {}, 0);
    CHECK(connackCode(a) == 1);
    CHECK(ev.audited("auth_failure"));
}

TEST_CASE("pipeline: a certificate client is accepted and its CONNECT forwarded") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    Action a =
        sendConnect(p, connectPacket(ProtocolVersion::V311, "sensor-1"), withCert("sensor-1"));
    CHECK(a.kind == K::OpenBackend);
    CHECK(p.identity() == "sensor-1");
    CHECK(p.stage() == Stage::ConnectingBackend);
    CHECK(ev.counts["auth:certificate:ok"] == 1);
    CHECK(ev.counts["login:sensor-1"] == 1);
    CHECK(p.deadline() == 5000);  // backend.connect_timeout from now
    auto c = forwardedConnect(p, 10);
    CHECK(c.username == std::optional<std::string>("sensor-1"));  // credentials: identity
    CHECK(p.awaitingConnack());
}

TEST_CASE("pipeline: a certificate revoked since the handshake is refused at CONNECT") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    auto ctx = withCert("sensor-1");
    ctx.certificateProblem = "certificate revoked";
    Action a = sendConnect(p, connectPacket(ProtocolVersion::V5, "sensor-1"), ctx);
    CHECK(connackCode(a) == mqtt::reason::NotAuthorized);
    REQUIRE(ev.authFailures.size() == 1);
    CHECK(ev.authFailures[0] == "certificate|");
}

TEST_CASE("pipeline: keepalive above max_keepalive") {
    RecordingEvents ev;
    auto opt = makeOptions();
    SECTION("v5: clamped, and the broker sees the clamped value") {
        ConnectionPipeline p(opt, ev, 0);
        Action a =
            sendConnect(p, connectPacket(ProtocolVersion::V5, "sensor-1", 0), withCert("sensor-1"));
        CHECK(a.kind == K::OpenBackend);
        CHECK(a.tcpProbeSeconds == 0);
        CHECK(forwardedConnect(p, 0).keepAlive == 300);
    }
    SECTION("v3 accept: unchanged, TCP probes on") {
        ConnectionPipeline p(opt, ev, 0);
        Action a = sendConnect(p, connectPacket(ProtocolVersion::V311, "sensor-1", 1000),
                               withCert("sensor-1"));
        CHECK(a.kind == K::OpenBackend);
        CHECK(a.tcpProbeSeconds == 300);
        CHECK(forwardedConnect(p, 0).keepAlive == 1000);
    }
    SECTION("v3 refuse: CONNACK 0x02") {
        opt->refuseV3Keepalive = true;
        ConnectionPipeline p(opt, ev, 0);
        Action a = sendConnect(p, connectPacket(ProtocolVersion::V311, "sensor-1", 1000),
                               withCert("sensor-1"));
        CHECK(connackCode(a) == 2);
    }
}

TEST_CASE("pipeline: the password check runs as an Await job") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    Action a = sendConnect(p, passwordConnect(ProtocolVersion::V5, "alice", "pw"), {});
    REQUIRE(a.kind == K::Await);
    REQUIRE(a.job);
    CHECK(a.job->user == "alice");
    CHECK(a.job->password == "pw");
    CHECK(p.stage() == Stage::Authenticating);
    JobResult r;
    r.checked = a.job->passwords;

    SECTION("ok") {
        r.status = JobResult::Status::Ok;
        Action done = p.onJobDone(r, 5);
        CHECK(done.kind == K::OpenBackend);
        CHECK(p.identity() == "alice");
        CHECK(ev.counts["auth:password:ok"] == 1);
        // The password never reaches the broker (credentials: identity).
        CHECK_FALSE(forwardedConnect(p, 6).password.has_value());
    }
    SECTION("bad password: refused, not charged twice") {
        r.status = JobResult::Status::BadPassword;
        CHECK(connackCode(p.onJobDone(r, 5)) == mqtt::reason::BadUsernameOrPassword);
        CHECK(ev.authFailures.empty());  // the AuthPool charge already counted it
        CHECK(ev.counts["auth:password:fail"] == 1);
    }
    SECTION("queue full: 0x89 and auth_queue") {
        r.status = JobResult::Status::QueueFull;
        r.detail = "refused";
        CHECK(connackCode(p.onJobDone(r, 5)) == mqtt::reason::ServerBusy);
        CHECK(ev.counts["limit:auth_queue"] == 1);
    }
    SECTION("banned while it waited") {
        r.status = JobResult::Status::Banned;
        r.detail = "banned while the password check waited";
        CHECK(connackCode(p.onJobDone(r, 5)) == mqtt::reason::Banned);
    }
    SECTION("the password file was replaced by a reload: checked again") {
        auto opt = makeOptions();
        opt->passwords = makePasswords("alice", "new");
        p.setOptions(opt);
        r.status = JobResult::Status::Ok;
        Action again = p.onJobDone(r, 5);
        REQUIRE(again.kind == K::Await);
        CHECK(again.job->passwords == opt->passwords);
    }
    SECTION("a result after the connection ended is ignored") {
        CHECK(p.onTimer(20000).kind == K::CloseNow);
        r.status = JobResult::Status::Ok;
        CHECK(p.onJobDone(r, 20001).kind == K::None);
    }
}

TEST_CASE("pipeline: a banned address is refused before its password is checked") {
    RecordingEvents ev;
    ev.banned = true;
    ConnectionPipeline p(makeOptions(), ev, 0);
    Action a = sendConnect(p, passwordConnect(ProtocolVersion::V5, "alice", "pw"), {});
    CHECK(connackCode(a) == mqtt::reason::Banned);
    ConnectionPipeline q(makeOptions(), ev, 0);
    CHECK(connackCode(sendConnect(q, connectPacket(ProtocolVersion::V5, "sensor-1"),
                                  withCert("sensor-1"))) == mqtt::reason::Banned);
}

TEST_CASE("pipeline: a will outside the rights is refused") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    auto c = connectPacket(ProtocolVersion::V5, "sensor-1");
    c.willFlag = true;
    c.willTopic = "devices/other/status";
    c.willPayload = "gone";
    Action a = sendConnect(p, c, withCert("sensor-1"));
    CHECK(connackCode(a) == mqtt::reason::NotAuthorized);
    CHECK(ev.counts["authz:will"] == 1);
    CHECK(ev.denied == std::vector<std::string>{"devices/other/status"});
    // Its own branch is fine.
    ConnectionPipeline q(makeOptions(), ev, 0);
    c.willTopic = "devices/sensor-1/status";
    CHECK(sendConnect(q, c, withCert("sensor-1")).kind == K::OpenBackend);
}

TEST_CASE("pipeline: backend.credentials rewrites what the broker sees") {
    RecordingEvents ev;
    auto opt = makeOptions();
    auto c = passwordConnect(ProtocolVersion::V311, "sensor-1", "secret");
    JobResult ok;
    ok.status = JobResult::Status::Ok;
    SECTION("strip") {
        opt->credentials = config::BackendCredentials::Strip;
        ConnectionPipeline p(opt, ev, 0);
        REQUIRE(sendConnect(p, c, withCert("sensor-1")).kind == K::Await);
        REQUIRE(p.onJobDone(ok, 1).kind == K::OpenBackend);
        auto f = forwardedConnect(p, 2);
        CHECK_FALSE(f.username);
        CHECK_FALSE(f.password);
    }
    SECTION("passthrough: an unproven username differing from the identity is refused") {
        opt->credentials = config::BackendCredentials::Passthrough;
        ConnectionPipeline p(opt, ev, 0);
        auto other = connectPacket(ProtocolVersion::V5, "sensor-1");
        other.username = "ops-console";
        CHECK(connackCode(sendConnect(p, other, withCert("sensor-1"))) ==
              mqtt::reason::BadUsernameOrPassword);
    }
}

TEST_CASE("pipeline: deadlines before the session starts") {
    RecordingEvents ev;
    SECTION("handshake_timeout while waiting for CONNECT") {
        ConnectionPipeline p(makeOptions(), ev, 100);
        CHECK(p.deadline() == 10100);
        CHECK(p.onTimer(10100).kind == K::CloseNow);
        CHECK(ev.counts["limit:handshake_timeout"] == 1);
        CHECK(ev.audited("disconnect|||handshake_timeout"));
    }
    SECTION("backend connect timeout") {
        ConnectionPipeline p(makeOptions(), ev, 0);
        REQUIRE(sendConnect(p, connectPacket(ProtocolVersion::V5, "sensor-1"), withCert("sensor-1"))
                    .kind == K::OpenBackend);
        CHECK(connackCode(p.onTimer(5000)) == mqtt::reason::ServerUnavailable);
        CHECK(ev.counts["backend_down"] == 1);
    }
    SECTION("backend refused") {
        ConnectionPipeline p(makeOptions(), ev, 0);
        REQUIRE(
            sendConnect(p, connectPacket(ProtocolVersion::V311, "sensor-1"), withCert("sensor-1"))
                .kind == K::OpenBackend);
        CHECK(connackCode(p.onBackendFailed("backend unavailable: refused", true)) == 3);
        CHECK(ev.counts["backend_down"] == 1);
    }
    SECTION("CONNACK timeout") {
        ConnectionPipeline p(makeOptions(), ev, 0);
        REQUIRE(sendConnect(p, connectPacket(ProtocolVersion::V5, "sensor-1"), withCert("sensor-1"))
                    .kind == K::OpenBackend);
        p.onBackendConnected(1);
        CHECK(connackCode(p.onTimer(5000)) == mqtt::reason::ServerUnavailable);
        CHECK(ev.counts["connack_timeout"] == 1);
    }
}

TEST_CASE("pipeline: the broker's CONNACK") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    REQUIRE(sendConnect(p, connectPacket(ProtocolVersion::V5, "sensor-1", 10), withCert("sensor-1"))
                .kind == K::OpenBackend);
    p.onBackendConnected(1);
    SECTION("a packet before it: the client gets a CONNACK 0x80") {
        Verdict v = fromBroker(p, publish("public/x"), 2);
        CHECK(v.kind == Verdict::Kind::Close);
        REQUIRE(v.onward.size() >= 4);
        CHECK(v.onward[0] == 0x20);
        CHECK(v.onward[3] == mqtt::reason::UnspecifiedError);
        CHECK(ev.counts["proto:backend_malformed"] == 1);
    }
    SECTION("accepted: audit connect, keepalive deadline 1.5 x keepalive") {
        CHECK(fromBroker(p, mqtt::encodeConnack(ProtocolVersion::V5, false, 0, {}), 2).kind ==
              Verdict::Kind::Forward);
        CHECK(ev.audited("connect"));
        CHECK(p.deadline() == 2 + 15000);
    }
    SECTION("refused by the broker: forwarded, audited, then the connection ends") {
        const Verdict v =
            fromBroker(p, mqtt::encodeConnack(ProtocolVersion::V5, false, 0x87, {}), 2);
        CHECK(v.kind == Verdict::Kind::Forward);
        // The gateway closes, not only the broker: one that stalls must not keep the refused
        // client connected (without a deadline) with its packets still forwarded.
        CHECK(v.endAfter);
        CHECK(p.stage() == ConnectionPipeline::Stage::Closed);
        CHECK(ev.audited("auth_failure|||broker refused the connection (code 0x87)"));
        CHECK(p.deadline() == 0);
    }
}

TEST_CASE("pipeline: keepalive is enforced from whole packets only") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V5, "sensor-1", 0, 10);
    CHECK(p.deadline() == 15000);
    // A packet at 10 s moves the real deadline; the timer finds it and re-arms.
    CHECK(fromClient(p, mqtt::encodePingreq(), 10000).kind == Verdict::Kind::Forward);
    CHECK(p.onTimer(15000).kind == K::None);
    CHECK(p.deadline() == 25000);
    // Paused by the gateway: the silence is not the client's.
    CHECK(p.onTimer(25000, true).kind == K::None);
    CHECK(p.deadline() == 40000);
    Action a = p.onTimer(40000);
    CHECK(a.kind == K::Close);
    REQUIRE(a.toClient.size() >= 3);
    CHECK(a.toClient[0] == 0xE0);  // v5 DISCONNECT
    CHECK(a.toClient[2] == mqtt::reason::KeepAliveTimeout);
    CHECK(ev.audited("disconnect|||keepalive_timeout"));
}

TEST_CASE("pipeline: max_packet_size is judged from the fixed header") {
    RecordingEvents ev;
    auto opt = makeOptions();
    opt->maxPacketSize = 64;
    ConnectionPipeline p(opt, ev, 0);
    establish(p, ProtocolVersion::V5);
    CHECK(p.onClientHeader(frameOf(publish("devices/sensor-1/a", 10))).kind == K::None);
    Action a = p.onClientHeader(frameOf(publish("devices/sensor-1/a", 100)));
    CHECK(a.kind == K::Close);
    REQUIRE(a.toClient.size() >= 3);
    CHECK(a.toClient[2] == mqtt::reason::PacketTooLarge);
    CHECK(ev.counts["limit:max_packet_size"] == 1);
}

TEST_CASE("pipeline: a denied publish is never forwarded") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V311);
    const auto v3 = ProtocolVersion::V311;
    CHECK(fromClient(p, publish("devices/sensor-1/t", 4, v3), 1).kind == Verdict::Kind::Forward);
    CHECK(fromClient(p, publish("devices/other/t", 4, v3), 2).kind == Verdict::Kind::Drop);
    CHECK(ev.counts["authz:publish"] == 1);
    CHECK(ev.denied == std::vector<std::string>{"devices/other/t"});
}

TEST_CASE("pipeline: the client's DISCONNECT ends the connection after it is forwarded") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V311);
    Verdict v = fromClient(p, mqtt::encodeDisconnect(ProtocolVersion::V311, 0, {}), 1);
    CHECK(v.kind == Verdict::Kind::Forward);
    CHECK(v.endAfter);
    p.onClosed();
    CHECK(ev.audited("disconnect"));
}

TEST_CASE("pipeline: drain sends v5 clients DISCONNECT 0x8B") {
    RecordingEvents ev;
    ConnectionPipeline p(makeOptions(), ev, 0);
    establish(p, ProtocolVersion::V5);
    Action a = p.onDrain();
    CHECK(a.kind == K::Close);
    REQUIRE(a.toClient.size() >= 3);
    CHECK(a.toClient[2] == mqtt::reason::ServerShuttingDown);
}

TEST_CASE("pipeline: no DISCONNECT before the client has its CONNACK (MQTT 5 3.14.0-1)") {
    RecordingEvents ev;
    auto opt = std::make_shared<PipelineOptions>(*makeOptions());
    opt->limiter.publishRate = 1;
    opt->limiter.disconnectOnExceed = true;
    const ProtocolVersion version = GENERATE(ProtocolVersion::V5, ProtocolVersion::V311);
    {
        const bool v5 = version == ProtocolVersion::V5;
        ConnectionPipeline p(opt, ev, 0);
        REQUIRE(sendConnect(p, connectPacket(version, "sensor-1", 10), withCert("sensor-1")).kind ==
                K::OpenBackend);
        SECTION("a reload that takes the rights away while the broker's CONNACK is awaited") {
            p.onBackendConnected(1);
            REQUIRE(p.awaitingConnack());
            auto none = std::make_shared<PipelineOptions>(*opt);
            none->policy = makePolicy({}, {});
            CHECK(connackCode(p.onReload(none, std::nullopt, 2)) ==
                  (v5 ? mqtt::reason::NotAuthorized : 5));
        }
        SECTION("a kick while the backend connects") {
            CHECK(connackCode(p.onKick("sensor-1", false, false, mqtt::reason::AdministrativeAction,
                                       "kicked")) == (v5 ? mqtt::reason::NotAuthorized : 5));
        }
        SECTION("drain while the broker's CONNACK is awaited") {
            p.onBackendConnected(1);
            CHECK(connackCode(p.onDrain()) == (v5 ? mqtt::reason::ServerUnavailable : 3));
        }
        SECTION("a pipelined packet over a limit before the CONNACK") {
            p.onBackendConnected(1);
            const auto pub = publish("devices/sensor-1/x", 4, version);
            const auto f = frameOf(pub);
            CHECK(p.onClientPacket(f, pub.data() + f.headerSize, 2).kind == Verdict::Kind::Forward);
            const Verdict v = p.onClientPacket(f, pub.data() + f.headerSize, 3);
            CHECK(v.kind == Verdict::Kind::Close);
            CHECK(v.disconnectReason == 0);
            REQUIRE(v.reply.size() >= 4);
            CHECK(v.reply[0] == 0x20);
            CHECK(v.reply[3] == (v5 ? mqtt::reason::UnspecifiedError : 3));
        }
    }
}
