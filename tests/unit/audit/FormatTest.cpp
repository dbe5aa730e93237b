#include <catch2/catch.hpp>

#include "AuditTestUtil.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;
using Severity = Finding::Severity;

TEST_CASE("severity names are the contract's words") {
    CHECK(std::string(severityName(Severity::High)) == "high");
    CHECK(std::string(severityName(Severity::Medium)) == "medium");
    CHECK(std::string(severityName(Severity::Low)) == "low");
}

TEST_CASE("text format: one line per finding") {
    std::vector<Finding> f = {
        {Severity::High, "plaintext-listener", "listener mqtt", "plain text", "add tls"},
        {Severity::Low, "unused-role", "role x", "line\nbreak", ""},
    };
    CHECK(formatText(f) ==
          "high    plaintext-listener  listener mqtt: plain text (fix: add tls)\n"
          "low     unused-role  role x: line break\n");
    CHECK(formatText({}).empty());
}

TEST_CASE("json format: an array of objects with escaped strings") {
    CHECK(formatJson({}) == "[]\n");
    std::vector<Finding> f = {
        {Severity::Medium, "crl-stale", "listener \"a\"", "path C:\\x\ttab\x01", "fix it"},
    };
    CHECK(formatJson(f) ==
          "[\n  {\"severity\": \"medium\", \"id\": \"crl-stale\", \"subject\": "
          "\"listener \\\"a\\\"\", \"message\": \"path C:\\\\x\\ttab\\u0001\", \"fix\": "
          "\"fix it\"}\n]\n");
}

TEST_CASE("findings are ordered high, medium, low") {
    auto c = cleanConfig();
    c.metrics.bind = {"0.0.0.0", 9464};                                    // low
    c.policy.checkDeliveries = false;                                      // medium
    c.auth.anonymous = true;                                               // high
    c.policy.roles.push_back(policy::RoleSpec{"unused", {}, {}, {}, {}});  // low
    const auto findings = auditConfig(c, now());
    REQUIRE(findings.size() >= 4);
    for (size_t i = 1; i < findings.size(); ++i)
        CHECK(static_cast<int>(findings[i - 1].severity) <= static_cast<int>(findings[i].severity));
    CHECK(findings.front().id == "anonymous-access");
}
