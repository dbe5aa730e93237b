#include <catch2/catch.hpp>

#include "AuditTestUtil.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;
using Severity = Finding::Severity;

namespace {

const Finding* findSubject(const std::vector<Finding>& findings, std::string_view id,
                           std::string_view subject) {
    for (const auto& f : findings)
        if (f.id == id && f.subject == subject) return &f;
    return nullptr;
}

}  // namespace

TEST_CASE("anonymous: true is high") {
    auto c = cleanConfig();
    c.auth.anonymous = true;
    auto f = find(auditConfig(c, now()), "anonymous-access");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->subject == "auth");
}

TEST_CASE("missing limits are medium, one finding per key") {
    auto c = cleanConfig();
    c.limits.publishRate = {0};
    c.limits.publishBytesRate = {0};
    c.limits.maxConnectionsPerIp = 0;
    c.limits.connectionRatePerIp = {0};
    c.limits.maxConnections = 0;
    c.limits.maxSubscriptions = 0;
    c.bans.authFailures = 0;
    const auto findings = auditConfig(c, now());
    for (const char* subject :
         {"limits.publish_rate", "limits.publish_bytes_rate", "limits.max_connections_per_ip",
          "limits.connection_rate_per_ip", "limits.max_connections", "limits.max_subscriptions",
          "bans.auth_failures"}) {
        INFO(subject);
        auto f = findSubject(findings, "missing-limit", subject);
        REQUIRE(f);
        CHECK(f->severity == Severity::Medium);
    }
    CHECK(count(findings, "missing-limit") == 7);
}

TEST_CASE("loose limits: handshake_timeout over 60 s, max_packet_size over 16 MiB") {
    auto c = cleanConfig();
    c.limits.handshakeTimeout = std::chrono::seconds(60);
    c.limits.maxPacketSize = 16u * 1024 * 1024;
    CHECK(find(auditConfig(c, now()), "loose-limit") ==
          std::nullopt);  // the bounds themselves are ok
    c.limits.handshakeTimeout = std::chrono::seconds(61);
    c.limits.maxPacketSize = 16u * 1024 * 1024 + 1;
    const auto findings = auditConfig(c, now());
    auto f = findSubject(findings, "loose-limit", "limits.handshake_timeout");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    f = findSubject(findings, "loose-limit", "limits.max_packet_size");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
}

TEST_CASE("check_deliveries false is medium; on_publish_denied either way is fine") {
    auto c = cleanConfig();
    c.policy.onPublishDenied = policy::OnPublishDenied::Disconnect;
    CHECK(auditConfig(c, now()).empty() == auditConfig(cleanConfig(), now()).empty());
    c.policy.checkDeliveries = false;
    auto f = find(auditConfig(c, now()), "check-deliveries-off");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
}

TEST_CASE("metrics on a non-loopback address is low") {
    auto c = cleanConfig();
    c.metrics.bind = {"0.0.0.0", 9464};
    auto f = find(auditConfig(c, now()), "metrics-exposed");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    c.metrics.enabled = false;
    CHECK(find(auditConfig(c, now()), "metrics-exposed") == std::nullopt);
}

TEST_CASE("backend not on loopback is low") {
    auto c = cleanConfig();
    c.backend.address = {"10.1.2.3", 1883};
    auto f = find(auditConfig(c, now()), "remote-backend");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    CHECK(f->message.find("10.1.2.3:1883") != std::string::npos);
    c.backend.address = {"fd00::1", 1883};
    f = find(auditConfig(c, now()), "remote-backend");
    REQUIRE(f);
    CHECK(f->message.find("[fd00::1]:1883") != std::string::npos);
}

TEST_CASE("a remote cluster Redis without a password is medium") {
    auto c = cleanConfig();
    c.cluster.redis = config::HostPort{"10.0.0.7", 6379};
    auto f = find(auditConfig(c, now()), "cluster-unauthenticated");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->message.find("10.0.0.7:6379") != std::string::npos);
    c.cluster.password = "s3cret";
    CHECK(find(auditConfig(c, now()), "cluster-unauthenticated") == std::nullopt);
    c.cluster.password.clear();
    c.cluster.redis = config::HostPort{"127.0.0.1", 6379};  // a sidecar Redis
    CHECK(find(auditConfig(c, now()), "cluster-unauthenticated") == std::nullopt);
}

TEST_CASE("backend.credentials passthrough: medium with certificate-only auth, low otherwise") {
    auto c = cleanConfig();
    CHECK(find(auditConfig(c, now()), "backend-credentials-passthrough") == std::nullopt);
    c.backend.credentials = config::BackendCredentials::Passthrough;
    c.auth.methods = {config::AuthMethod::Certificate};
    auto f = find(auditConfig(c, now()), "backend-credentials-passthrough");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->message.find("certificate-only") != std::string::npos);
    c.auth.methods = {config::AuthMethod::Certificate, config::AuthMethod::Password};
    f = find(auditConfig(c, now()), "backend-credentials-passthrough");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
}

TEST_CASE("a cluster without key_file is high; a remote Redis is plaintext (no TLS client)") {
    auto c = cleanConfig();
    CHECK(find(auditConfig(c, now()), "cluster-unsigned") == std::nullopt);
    c.cluster.redis = config::HostPort{"127.0.0.1", 6379};
    auto f = find(auditConfig(c, now()), "cluster-unsigned");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->subject == "cluster");
    // Loopback: nothing crosses a network.
    CHECK(find(auditConfig(c, now()), "cluster-redis-plaintext") == std::nullopt);
    c.cluster.key = std::string(64, 'k');
    CHECK(find(auditConfig(c, now()), "cluster-unsigned") == std::nullopt);
    c.cluster.redis = config::HostPort{"10.0.0.7", 6379};
    auto p = find(auditConfig(c, now()), "cluster-redis-plaintext");
    REQUIRE(p);
    CHECK(p->severity == Severity::Medium);
    CHECK(p->message.find("hiredis 0.14") != std::string::npos);
}

TEST_CASE("v3_keepalive: accept is a low finding naming the trade-off; refuse clears it") {
    auto c = cleanConfig();
    auto f = find(auditConfig(c, now()), "v3-keepalive-accepted");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    CHECK(f->message.find("CVE-2020-13849") != std::string::npos);
    c.limits.v3Keepalive = config::V3Keepalive::Refuse;
    CHECK(find(auditConfig(c, now()), "v3-keepalive-accepted") == std::nullopt);
}
