// auth.token in the ConnectionPipeline (issue #24) on a fake clock: a JWT-shaped password or
// v5 method "jwt" becomes a Token job; the verdict accepts or refuses (0x86, counted, charged);
// the session ends at exp + leeway (v5 DISCONNECT 0xA0); AUTH 0x19 re-authenticates (AUTH
// 0x00, deadline moved) or ends the session (0x87); the broker never sees the jwt properties.
#include <catch2/catch.hpp>

#include "gateway/token/Base64Url.h"
#include "tests/unit/inspect/PipelineHarness.h"

using namespace moat;
using namespace moat::test;
using inspect::Action;
using inspect::ConnectionPipeline;
using inspect::JobResult;
using inspect::Verdict;
using mqtt::ProtocolVersion;

namespace {

constexpr int64_t kWall = 1'800'000'000;  // the wall-clock second the fake verdicts carry

const std::string kToken =
    token::base64UrlEncode(R"({"alg":"ES256"})") + "." + token::base64UrlEncode("{}") + ".c2ln";

std::shared_ptr<inspect::PipelineOptions> tokenOptions() {
    auto o = makeOptions();
    auto auth = std::make_shared<config::AuthConfig>();
    auth->methods = {config::AuthMethod::Certificate, config::AuthMethod::Token};
    config::TokenAuthConfig t;
    t.leeway = config::Millis{5000};
    auth->token = t;
    o->auth = auth;
    return o;
}

JobResult verdict(bool ok, std::string identity, int64_t exp, bool reauth = false) {
    JobResult r;
    r.kind = inspect::Job::Kind::Token;
    r.status = JobResult::Status::Ok;
    r.reauth = reauth;
    r.verifiedAt = kWall;
    r.token.status = ok ? token::TokenStatus::Ok : token::TokenStatus::Refused;
    r.token.reason = ok ? "" : "token expired";
    r.token.identity = std::move(identity);
    r.token.expiresAt = exp;
    return r;
}

mqtt::ConnectPacket withToken(ProtocolVersion v, const std::string& cid, bool enhanced) {
    auto c = connectPacket(v, cid);
    if (enhanced) {
        c.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationMethod, "jwt"));
        c.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationData, kToken));
    } else {
        c.username = "ignored";
        c.password = kToken;
    }
    return c;
}

std::vector<uint8_t> authPacket(uint8_t reason, const std::string& data) {
    mqtt::AuthPacket p;
    p.reason = reason;
    p.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationMethod, "jwt"));
    p.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationData, data));
    return mqtt::encodeAuth(p);
}

// Established at t=0 with a token expiring `life` seconds after kWall.
void establishWithToken(ConnectionPipeline& p, ProtocolVersion v, bool enhanced, int64_t life,
                        mqtt::ConnectPacket* forwarded = nullptr) {
    Action a = sendConnect(p, withToken(v, "tok-1", enhanced), {}, 0);
    REQUIRE(a.kind == Action::Kind::Await);
    REQUIRE(a.job->kind == inspect::Job::Kind::Token);
    REQUIRE(a.job->token == kToken);
    a = p.onJobDone(verdict(true, "user:ann", kWall + life), 0);
    REQUIRE(a.kind == Action::Kind::OpenBackend);
    auto fwd = forwardedConnect(p, 0);
    if (forwarded) *forwarded = fwd;
    const auto ack = mqtt::encodeConnack(v, false, 0, {});
    const Verdict cv = fromBroker(p, ack, 0);
    REQUIRE(p.stage() == ConnectionPipeline::Stage::Established);
    if (enhanced) {
        REQUIRE(cv.kind == Verdict::Kind::Replace);
        const auto f = frameOf(cv.onward);
        mqtt::ConnackPacket back;
        REQUIRE(mqtt::decodeConnack(cv.onward.data() + f.headerSize, f.remainingLength, v, back) ==
                0);
        CHECK(mqtt::findString(back.properties, mqtt::prop::AuthenticationMethod) ==
              std::optional<std::string>("jwt"));
    }
}

}  // namespace

TEST_CASE("a token CONNECT awaits a Token job and takes the token's identity") {
    RecordingEvents ev;
    ConnectionPipeline p(tokenOptions(), ev, 0);
    mqtt::ConnectPacket fwd;
    establishWithToken(p, ProtocolVersion::V311, false, 600, &fwd);
    CHECK(p.identity() == "user:ann");
    CHECK(fwd.username == std::optional<std::string>("user:ann"));
    CHECK_FALSE(fwd.password);  // the token never reaches the broker
    CHECK(ev.counts["auth:token:ok"] == 1);
}

TEST_CASE("a refused token is a failed factor: 0x86, counted and charged") {
    RecordingEvents ev;
    ConnectionPipeline p(tokenOptions(), ev, 0);
    Action a = sendConnect(p, withToken(ProtocolVersion::V5, "tok-2", false), {}, 0);
    REQUIRE(a.kind == Action::Kind::Await);
    a = p.onJobDone(verdict(false, "", 0), 0);
    CHECK(a.kind == Action::Kind::Close);
    REQUIRE(a.toClient.size() >= 4);
    CHECK(a.toClient[3] == 0x86);
    CHECK(ev.counts["auth:token:fail"] == 1);
    REQUIRE(ev.authFailures.size() == 1);
    CHECK(ev.authFailures[0].rfind("token|", 0) == 0);
    CHECK(ev.audited("auth_failure|||token expired"));
}

TEST_CASE("the session ends at exp + leeway: v5 DISCONNECT 0xA0, v3 close") {
    for (ProtocolVersion v : {ProtocolVersion::V311, ProtocolVersion::V5}) {
        RecordingEvents ev;
        ConnectionPipeline p(tokenOptions(), ev, 0);
        establishWithToken(p, v, false, 10);  // + 5 s leeway: 15 s
        CHECK(p.deadline() == 15000);
        CHECK(p.onTimer(14999).kind == Action::Kind::None);
        Action a = p.onTimer(15000);
        CHECK(a.kind == Action::Kind::Close);
        if (v == ProtocolVersion::V5) {
            REQUIRE(a.toClient.size() >= 3);
            CHECK(a.toClient[2] == 0xA0);
        } else {
            CHECK(a.toClient.empty());
        }
        CHECK(ev.audited("disconnect|||token expired"));
    }
}

TEST_CASE("v5 AUTH 0x19 re-authenticates: AUTH 0x00 and the deadline moves") {
    RecordingEvents ev;
    ConnectionPipeline p(tokenOptions(), ev, 0);
    mqtt::ConnectPacket fwd;
    establishWithToken(p, ProtocolVersion::V5, true, 10, &fwd);
    // The broker saw neither the method nor the token.
    CHECK_FALSE(mqtt::findString(fwd.properties, mqtt::prop::AuthenticationMethod));
    CHECK_FALSE(mqtt::findString(fwd.properties, mqtt::prop::AuthenticationData));
    Verdict v = fromClient(p, authPacket(0x19, "fresh.token.x"), 1000);
    CHECK(v.kind == Verdict::Kind::Drop);
    REQUIRE(p.hasJob());
    auto job = p.takeJob();
    CHECK(job->reauth);
    CHECK(job->token == "fresh.token.x");
    // A second AUTH before the answer: protocol error.
    RecordingEvents ev2;
    ConnectionPipeline q(tokenOptions(), ev2, 0);
    establishWithToken(q, ProtocolVersion::V5, true, 10);
    fromClient(q, authPacket(0x19, "a"), 1000);
    CHECK(fromClient(q, authPacket(0x19, "b"), 1001).kind == Verdict::Kind::Close);

    Action a = p.onJobDone(verdict(true, "user:ann", kWall + 100, true), 2000);
    REQUIRE(a.toClient.size() >= 3);
    CHECK((a.toClient[0] >> 4) == 15);  // AUTH
    CHECK(a.toClient[2] == 0x00);
    CHECK(p.onTimer(p.deadline()).kind == Action::Kind::None);
    // The first token's end (15 s) passes; the new one's (2 s + 105 s) has not.
    CHECK(p.onTimer(16000).kind == Action::Kind::None);
    CHECK(p.stage() == ConnectionPipeline::Stage::Established);
    a = p.onTimer(107000);
    CHECK(a.kind == Action::Kind::Close);
    REQUIRE(a.toClient.size() >= 3);
    CHECK(a.toClient[2] == 0xA0);
}

TEST_CASE("a bad re-authentication, or one naming another identity, ends the session 0x87") {
    for (bool otherIdentity : {false, true}) {
        RecordingEvents ev;
        ConnectionPipeline p(tokenOptions(), ev, 0);
        establishWithToken(p, ProtocolVersion::V5, true, 600);
        fromClient(p, authPacket(0x19, "x"), 1000);
        REQUIRE(p.takeJob());
        Action a = p.onJobDone(otherIdentity ? verdict(true, "user:bob", kWall + 600, true)
                                             : verdict(false, "", 0, true),
                               1500);
        CHECK(a.kind == Action::Kind::Close);
        REQUIRE(a.toClient.size() >= 3);
        CHECK(a.toClient[2] == 0x87);
        CHECK(ev.counts["auth:token:fail"] == 1);
    }
}

namespace {

// roles_claim: "ops" may also read ops/#, "viewer" only public/#.
std::shared_ptr<inspect::PipelineOptions> roleOptions() {
    auto o = tokenOptions();
    policy::PolicySpec spec;
    for (auto [name, subscribe] :
         {std::pair<const char*, std::vector<std::string>>{"ops", {"public/#", "ops/#"}},
          {"viewer", {"public/#"}}}) {
        policy::RoleSpec role;
        role.name = name;
        role.subscribe = subscribe;
        spec.roles.push_back(role);
    }
    std::vector<std::string> errors;
    o->policy = policy::Policy::compile(spec, errors);
    REQUIRE(o->policy);
    return o;
}

JobResult withRoles(JobResult r, std::vector<std::string> roles) {
    r.token.roles = std::move(roles);
    return r;
}

}  // namespace

TEST_CASE("a re-authentication whose token names other roles applies them at once") {
    RecordingEvents ev;
    ConnectionPipeline p(roleOptions(), ev, 0);
    Action a = sendConnect(p, withToken(ProtocolVersion::V5, "tok-r", true), {}, 0);
    REQUIRE(a.kind == Action::Kind::Await);
    a = p.onJobDone(withRoles(verdict(true, "user:ann", kWall + 600), {"ops"}), 0);
    REQUIRE(a.kind == Action::Kind::OpenBackend);
    forwardedConnect(p, 0);
    fromBroker(p, mqtt::encodeConnack(ProtocolVersion::V5, false, 0, {}), 0);
    REQUIRE(p.stage() == ConnectionPipeline::Stage::Established);
    CHECK(fromClient(p, subscribeV5(1, "ops/alerts"), 1).kind == Verdict::Kind::Forward);
    mqtt::SubackPacket ack;
    ack.packetId = 1;
    ack.codes = {0};
    fromBroker(p, mqtt::encodeSuback(ack, ProtocolVersion::V5), 2);

    SECTION("the same roles: nothing but the AUTH answer") {
        fromClient(p, authPacket(0x19, "same"), 1000);
        REQUIRE(p.takeJob());
        a = p.onJobDone(withRoles(verdict(true, "user:ann", kWall + 900, true), {"ops"}), 1500);
        CHECK(a.toBroker.empty());
        REQUIRE(a.toClient.size() >= 3);
        CHECK(a.toClient[2] == 0x00);
    }
    SECTION("fewer roles: the subscription they no longer allow is removed at the broker") {
        fromClient(p, authPacket(0x19, "fewer"), 1000);
        REQUIRE(p.takeJob());
        a = p.onJobDone(withRoles(verdict(true, "user:ann", kWall + 900, true), {"viewer"}), 1500);
        CHECK(a.kind == Action::Kind::None);
        REQUIRE_FALSE(a.toBroker.empty());
        CHECK((a.toBroker[0] & 0xF0) == 0xA0);  // UNSUBSCRIBE
        REQUIRE(a.toClient.size() >= 3);
        CHECK((a.toClient[0] >> 4) == 15);  // AUTH 0x00
        CHECK(a.toClient[2] == 0x00);
        CHECK(ev.audited(
            "authz_denied|subscribe|ops/alerts|subscription revoked by re-authentication"));
        CHECK(fromClient(p, subscribeV5(2, "ops/x"), 1600).kind != Verdict::Kind::Forward);
    }
    SECTION("no role the policy defines, and no default roles: the session ends") {
        fromClient(p, authPacket(0x19, "none"), 1000);
        REQUIRE(p.takeJob());
        JobResult r = verdict(true, "user:ann", kWall + 900, true);
        r.token.ignoredRoles = {"nobody"};  // the verifier keeps only roles the policy defines
        a = p.onJobDone(r, 1500);
        CHECK(a.kind == Action::Kind::Close);
        CHECK(ev.audited("authz_denied|role||token role not defined"));
        CHECK(ev.audited("disconnect|||identity has no rights after re-authentication"));
    }
}
