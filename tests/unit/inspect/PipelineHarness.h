#pragma once
// ConnectionPipeline tests: recording events, options built from a small policy, and helpers
// that feed whole packets with a fake clock (milliseconds, passed in).

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gateway/inspect/ConnectionPipeline.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "policy/PasswordFile.h"
#include "policy/Policy.h"

namespace moat::test {

struct RecordingEvents : inspect::PipelineEvents {
    std::vector<std::string> audits;  // "event|action|topic|reason"
    std::map<std::string, int> counts;
    bool banned = false;
    std::set<std::string> bannedIdentities;
    std::vector<std::string> authFailures;  // "method|identity"
    std::vector<std::string> kicks;
    std::vector<std::string> denied;
    int publishes = 0;

    void audit(const char* event, const char* action, std::string_view topic, std::string_view,
               std::string_view reason, std::optional<uint64_t>) override {
        audits.push_back(std::string(event) + "|" + action + "|" + std::string(topic) + "|" +
                         std::string(reason));
    }
    void warn(const std::string&) override {}
    void authzDenied(std::string_view a) override { counts["authz:" + std::string(a)]++; }
    void rateLimited(std::string_view l) override { counts["limit:" + std::string(l)]++; }
    void protocolError(std::string_view r) override { counts["proto:" + std::string(r)]++; }
    void authCounted(std::string_view m, bool ok) override {
        counts["auth:" + std::string(m) + (ok ? ":ok" : ":fail")]++;
    }
    void backendUnreachable() override { counts["backend_down"]++; }
    void backendConnack(bool arrived) override {
        counts[arrived ? "connack" : "connack_timeout"]++;
    }
    bool addressBanned() override { return banned; }
    bool identityBanned(const std::string& id) override { return bannedIdentities.count(id) > 0; }
    void authFailed(std::string_view m, const std::string& id) override {
        authFailures.push_back(std::string(m) + "|" + id);
    }
    void loggedIn(const std::string& id) override { counts["login:" + id]++; }
    void deniedTopic(std::string_view t) override { denied.emplace_back(t); }
    void publishAdmitted(uint64_t) override { ++publishes; }
    void shareKick(const std::string& id, KickWhy why) override {
        kicks.push_back(id + (why == KickWhy::Revoked ? "|revoked" : "|no_rights"));
    }
    bool audited(const std::string& prefix) const {
        for (const auto& a : audits)
            if (a.rfind(prefix, 0) == 0) return true;
        return false;
    }
};

inline std::shared_ptr<const policy::Policy> makePolicy(std::vector<std::string> publish,
                                                        std::vector<std::string> subscribe) {
    policy::PolicySpec spec;
    policy::RoleSpec role;
    role.name = "dev";
    role.publish = std::move(publish);
    role.subscribe = std::move(subscribe);
    spec.roles.push_back(role);
    spec.defaultRoles = {"dev"};
    std::vector<std::string> errors;
    auto p = policy::Policy::compile(spec, errors);
    REQUIRE(p);
    return p;
}

inline std::shared_ptr<const policy::PasswordFile> makePasswords(const std::string& user,
                                                                 const std::string& pw) {
    std::vector<std::string> errors;
    auto f = policy::PasswordFile::parse(user + ":" + policy::hashPassword(pw, 1000) + "\n", "test",
                                         errors);
    REQUIRE(f);
    return std::make_shared<const policy::PasswordFile>(std::move(*f));
}

// Certificate or password, rights under devices/<identity>/ and public/.
inline std::shared_ptr<inspect::PipelineOptions> makeOptions() {
    auto o = std::make_shared<inspect::PipelineOptions>();
    o->auth = std::make_shared<config::AuthConfig>();
    o->policy = makePolicy({"devices/%u/#"}, {"devices/%u/#", "public/#"});
    static const auto passwords = makePasswords("alice", "pw");
    o->passwords = passwords;
    o->limiter = {};  // unlimited unless a test sets a rate
    o->handshakeTimeoutMs = 10000;
    o->connectTimeoutMs = 5000;
    o->maxKeepaliveSeconds = 300;
    return o;
}

inline mqtt::ConnectPacket connectPacket(mqtt::ProtocolVersion v, std::string clientId,
                                         uint16_t keepAlive = 60) {
    mqtt::ConnectPacket c;
    c.version = v;
    c.protocolLevel = v == mqtt::ProtocolVersion::V5 ? 5 : 4;
    c.clientId = std::move(clientId);
    c.keepAlive = keepAlive;
    return c;
}

inline inspect::ConnectContext withCert(const std::string& identity) {
    inspect::ConnectContext ctx;
    ctx.cert.presented = true;
    ctx.cert.identity = identity;
    return ctx;
}

inline mqtt::Frame frameOf(const std::vector<uint8_t>& bytes) {
    mqtt::Frame f;
    REQUIRE(mqtt::parseFrame(bytes.data(), bytes.size(), f) == mqtt::FrameStatus::Ok);
    return f;
}

inline inspect::Action sendConnect(inspect::ConnectionPipeline& p, const mqtt::ConnectPacket& c,
                                   const inspect::ConnectContext& ctx, uint64_t now = 0) {
    const auto bytes = mqtt::encodeConnect(c);
    const auto f = frameOf(bytes);
    return p.onConnect(f, bytes.data() + f.headerSize, bytes.data(), ctx, now);
}

// A v5 SUBSCRIBE of one filter at QoS 0.
inline std::vector<uint8_t> subscribeV5(uint16_t id, const std::string& filter) {
    mqtt::SubscribePacket s;
    s.packetId = id;
    s.subscriptions.push_back({filter, 0});
    return mqtt::encodeSubscribe(s, mqtt::ProtocolVersion::V5);
}

inline inspect::Verdict fromClient(inspect::ConnectionPipeline& p, const std::vector<uint8_t>& b,
                                   uint64_t now) {
    const auto f = frameOf(b);
    return p.onClientPacket(f, b.data() + f.headerSize, now);
}

inline inspect::Verdict fromBroker(inspect::ConnectionPipeline& p, const std::vector<uint8_t>& b,
                                   uint64_t now) {
    const auto f = frameOf(b);
    return p.onBrokerPacket(f, b.data() + f.headerSize, now);
}

inline std::vector<uint8_t> publish(const std::string& topic, size_t payload = 4,
                                    mqtt::ProtocolVersion v = mqtt::ProtocolVersion::V5) {
    mqtt::PublishPacket p;
    p.topic = topic;
    p.payload.assign(payload, 'x');
    return mqtt::encodePublish(p, v);
}

// The CONNECT the pipeline sends the broker once connected.
inline mqtt::ConnectPacket forwardedConnect(inspect::ConnectionPipeline& p, uint64_t now) {
    inspect::Action a = p.onBackendConnected(now);
    const auto f = frameOf(a.toBroker);
    mqtt::ConnectPacket c;
    REQUIRE(mqtt::decodeConnect(a.toBroker.data() + f.headerSize, f.remainingLength, c) == 0);
    return c;
}

// A certificate client of `version`, established (CONNACK accepted) at `now`.
inline void establish(inspect::ConnectionPipeline& p, mqtt::ProtocolVersion v,
                      const std::string& identity = "sensor-1", uint64_t now = 0,
                      uint16_t keepAlive = 60) {
    inspect::Action a =
        sendConnect(p, connectPacket(v, identity, keepAlive), withCert(identity), now);
    REQUIRE(a.kind == inspect::Action::Kind::OpenBackend);
    REQUIRE(!p.onBackendConnected(now).toBroker.empty());
    const auto ack = mqtt::encodeConnack(v, false, 0, {});
    REQUIRE(fromBroker(p, ack, now).kind == inspect::Verdict::Kind::Forward);
    REQUIRE(p.stage() == inspect::ConnectionPipeline::Stage::Established);
    REQUIRE_FALSE(p.awaitingConnack());
}

}  // namespace moat::test
