// Rules at CONNECT and on reload: the forwarded username (backend.credentials passthrough),
// what a reload judges in each connection stage, keepalive activity, broker health.
#include <catch2/catch.hpp>

#include "gateway/inspect/Authenticator.h"
#include "gateway/inspect/BackendHealth.h"
#include "gateway/inspect/ForwardedCredentials.h"
#include "gateway/inspect/KeepAlive.h"
#include "gateway/inspect/ReloadCheck.h"

using namespace moat;
using namespace moat::inspect;
using config::AuthMethod;
using config::BackendCredentials;

namespace {

AuthOutcome accepted(std::string identity, std::vector<FactorResult> factors) {
    AuthOutcome o;
    o.ok = true;
    o.identity = std::move(identity);
    o.factors = std::move(factors);
    return o;
}

}  // namespace

TEST_CASE("passthrough: a username without a password must equal the identity") {
    const auto certOnly = accepted("sensor-1", {{AuthMethod::Certificate, true}});
    auto r = checkForwardedUsername(BackendCredentials::Passthrough, certOnly,
                                    std::string("ops-console"));
    CHECK_FALSE(r.ok);
    CHECK(r.v5Reason == 0x86);
    CHECK(checkForwardedUsername(BackendCredentials::Passthrough, certOnly, std::string("sensor-1"))
              .ok);
    CHECK(checkForwardedUsername(BackendCredentials::Passthrough, certOnly, std::nullopt).ok);
    // Identity and strip never forward the device's username.
    CHECK(checkForwardedUsername(BackendCredentials::Identity, certOnly, std::string("ops-console"))
              .ok);
    CHECK(
        checkForwardedUsername(BackendCredentials::Strip, certOnly, std::string("ops-console")).ok);
}

TEST_CASE("passthrough: a username proven by the password factor is forwarded") {
    // Certificate for sensor-1, password verified for the username (username_must_match_cert
    // off): the broker sees a name whose secret was checked.
    const auto both =
        accepted("sensor-1", {{AuthMethod::Certificate, true}, {AuthMethod::Password, true}});
    CHECK(usernameProven(both));
    CHECK(checkForwardedUsername(BackendCredentials::Passthrough, both, std::string("other")).ok);
    const auto anon = accepted("anonymous", {});
    CHECK_FALSE(usernameProven(anon));
    CHECK_FALSE(
        checkForwardedUsername(BackendCredentials::Passthrough, anon, std::string("admin")).ok);
}

TEST_CASE("passthrough: a refusal stays a refusal with its own reason") {
    AuthOutcome refused;
    refused.v5Reason = 0x87;
    refused.reason = "no accepted authentication factor";
    auto r = checkForwardedUsername(BackendCredentials::Passthrough, refused, std::string("x"));
    CHECK_FALSE(r.ok);
    CHECK(r.v5Reason == 0x87);
}

TEST_CASE("reload: a revoked certificate is judged in every stage after the handshake") {
    ReloadFacts revoked;
    revoked.certificateInvalid = true;
    CHECK(judgeReload(ConnStage::BeforeCertificate, revoked) == ReloadOutcome::Keep);
    for (auto st : {ConnStage::AwaitConnect, ConnStage::Authenticating,
                    ConnStage::ConnectingBackend, ConnStage::Established}) {
        CHECK(judgeReload(st, revoked) == ReloadOutcome::CertificateInvalid);
        CHECK(endBy(st) != EndBy::Nothing);
    }
    CHECK(endBy(ConnStage::AwaitConnect) == EndBy::Close);
    CHECK(endBy(ConnStage::Authenticating) == EndBy::ConnackRefusal);
    CHECK(endBy(ConnStage::ConnectingBackend) == EndBy::ConnackRefusal);
    CHECK(endBy(ConnStage::Established) == EndBy::Disconnect);
}

TEST_CASE("reload: bans, rights and the will are judged once a session has rights") {
    ReloadFacts will;
    will.willAllowed = false;
    CHECK(judgeReload(ConnStage::Established, will) == ReloadOutcome::WillDenied);
    CHECK(judgeReload(ConnStage::ConnectingBackend, will) == ReloadOutcome::WillDenied);
    // Before authentication finishes there are no rights yet: finishAuth takes them then.
    CHECK(judgeReload(ConnStage::Authenticating, will) == ReloadOutcome::Keep);
    ReloadFacts none;
    none.hasRights = false;
    none.willAllowed = false;
    CHECK(judgeReload(ConnStage::Established, none) == ReloadOutcome::NoRights);
    ReloadFacts banned = none;
    banned.identityBanned = true;
    CHECK(judgeReload(ConnStage::Established, banned) == ReloadOutcome::Banned);
    CHECK(judgeReload(ConnStage::Established, ReloadFacts{}) == ReloadOutcome::Keep);
}

TEST_CASE("keepalive: only complete packets refresh the deadline") {
    KeepAlive k;
    k.start(4, 1000);  // 6 s of silence allowed
    CHECK(k.enabled());
    CHECK(k.remaining(1000) == 6000);
    CHECK(k.remaining(6999) == 1);
    CHECK(k.remaining(7000) == 0);
    k.packet(5000);
    CHECK(k.remaining(7000) == 4000);
    CHECK(k.remaining(11000) == 0);
    KeepAlive off;
    off.start(0, 0);
    CHECK_FALSE(off.enabled());
}

TEST_CASE("backend health: repeated CONNACK timeouts mark the broker down until it answers") {
    BackendHealth h;
    const auto t0 = BackendHealth::Clock::time_point{} + std::chrono::hours(1);
    for (unsigned i = 1; i < BackendHealth::kTimeoutsForDown; ++i) {
        h.connackTimedOut(t0);
        CHECK_FALSE(h.unresponsive(t0));
    }
    h.connackTimedOut(t0);
    CHECK(h.unresponsive(t0));
    h.connackReceived();
    CHECK_FALSE(h.unresponsive(t0));
    // One answer resets the streak.
    h.connackTimedOut(t0);
    CHECK_FALSE(h.unresponsive(t0));
}

TEST_CASE("backend health: the mark is held for a while, then one more timeout renews it") {
    BackendHealth h;
    const auto t0 = BackendHealth::Clock::time_point{} + std::chrono::hours(1);
    for (unsigned i = 0; i < BackendHealth::kTimeoutsForDown; ++i) h.connackTimedOut(t0);
    CHECK(h.unresponsive(t0 + BackendHealth::kHold - std::chrono::seconds(1)));
    const auto later = t0 + BackendHealth::kHold;
    CHECK_FALSE(h.unresponsive(later));
    h.connackTimedOut(later);
    CHECK(h.unresponsive(later));
}

TEST_CASE("identity_prefix: the identity, or the identity followed by one of -_:./") {
    CHECK(clientIdHasIdentityPrefix("dev1", "dev1"));
    for (const char* ok : {"dev1-a", "dev1_a", "dev1:a", "dev1.a", "dev1/a", "dev1-"})
        CHECK(clientIdHasIdentityPrefix(ok, "dev1"));
    for (const char* bad : {"dev10", "dev1a", "dev", "xdev1", "", "Dev1-a", "dev1 a"})
        CHECK_FALSE(clientIdHasIdentityPrefix(bad, "dev1"));
}
