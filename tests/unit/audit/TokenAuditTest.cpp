// auth.token findings (issue #24).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "AuditTestUtil.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;
using Severity = Finding::Severity;

namespace {

config::Config tokenConfig() {
    auto c = cleanConfig();
    c.auth.methods = {config::AuthMethod::Certificate, config::AuthMethod::Token};
    config::TokenAuthConfig t;
    t.keys = {"/nonexistent/idp.pem"};
    t.issuer = "https://idp";
    t.audience = "moat";
    t.maxLifetime = config::Millis{3600000};
    t.identityPrefix = "user:";
    c.auth.token = t;
    return c;
}

}  // namespace

TEST_CASE("a careful token setup has no token finding") {
    auto findings = auditConfig(tokenConfig(), now());
    for (const auto& f : findings) CHECK(f.id.rfind("token-", 0) != 0);
}

TEST_CASE("token findings: audience, issuer, max_lifetime, namespace") {
    auto c = tokenConfig();
    c.auth.token->audience.reset();
    c.auth.token->issuer.reset();
    c.auth.token->maxLifetime.reset();
    c.auth.token->identityPrefix.clear();
    auto findings = auditConfig(c, now());
    REQUIRE(find(findings, "token-no-audience"));
    CHECK(find(findings, "token-no-audience")->severity == Severity::Medium);
    REQUIRE(find(findings, "token-no-issuer"));
    REQUIRE(find(findings, "token-no-max-lifetime"));
    CHECK(find(findings, "token-no-max-lifetime")->severity == Severity::Low);
    REQUIRE(find(findings, "token-identity-namespace"));
}

TEST_CASE("token findings: short HMAC secret is high; HS* next to public keys") {
    const std::string path = "/tmp/moat_unit_audit_secret_" + std::to_string(::getpid());
    std::ofstream(path) << "short-secret\n";
    auto c = tokenConfig();
    c.auth.token->hmacSecrets = {path};
    c.auth.token->algorithms = {"RS256", "HS256"};
    auto findings = auditConfig(c, now());
    auto weak = find(findings, "token-weak-hmac-secret");
    REQUIRE(weak);
    CHECK(weak->severity == Severity::High);
    CHECK(weak->message.find("12 bytes") != std::string::npos);
    CHECK(weak->message.find("short-secret") == std::string::npos);  // never the secret itself
    REQUIRE(find(findings, "token-hmac-with-public-keys"));
    std::ofstream(path) << std::string(48, 'k') << "\n";
    findings = auditConfig(c, now());
    CHECK_FALSE(find(findings, "token-weak-hmac-secret"));
    ::unlink(path.c_str());
}
