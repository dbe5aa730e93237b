#include <catch2/catch.hpp>

#include "AuditTestUtil.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;
using Severity = Finding::Severity;

TEST_CASE("expired server certificate is high") {
    auto c = cleanConfig();
    c.listeners[0].tls->cert = pki().expiredCert;
    const auto findings = auditConfig(c, now());
    auto f = find(findings, "cert-expired");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->subject == "listener mqtts");
    CHECK(f->message.find("2020-02-01") != std::string::npos);
    CHECK(find(findings, "cert-expiring") == std::nullopt);
}

TEST_CASE("certificate expiring within 30 days is medium") {
    auto c = cleanConfig();
    c.listeners[0].tls->cert = pki().expiringCert;
    auto f = find(auditConfig(c, now()), "cert-expiring");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK((f->message.find("in 9 days") != std::string::npos ||
           f->message.find("in 10 days") != std::string::npos));
}

TEST_CASE("expiry is judged against the injected clock") {
    auto c = cleanConfig();  // valid for a year, CA for two
    using namespace std::chrono;
    auto f = find(auditConfig(c, now() + hours(24 * 350)), "cert-expiring");
    REQUIRE(f);
    CHECK(f->message.find("valid.pem") != std::string::npos);
    auto findings = auditConfig(c, now() + hours(24 * 800));
    CHECK(count(findings, "cert-expired") == 2);  // server cert and client CA
}

TEST_CASE("client CA bundle certificates are checked too") {
    auto c = cleanConfig();
    c.listeners[0].tls->clientCa = writeFile("bundle.pem", [] {
        std::string s;
        for (const auto& path : {pki().caCert, pki().expiredCert}) {
            std::FILE* f = std::fopen(path.c_str(), "rb");
            char buf[4096];
            size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
            std::fclose(f);
        }
        return s;
    }());
    auto f = find(auditConfig(c, now()), "cert-expired");
    REQUIRE(f);
    CHECK(f->message.rfind("client CA certificate", 0) == 0);
}

TEST_CASE("unreadable or empty certificate file is high") {
    auto c = cleanConfig();
    SECTION("missing") {
        c.listeners[0].tls->cert = pki().dir + "/nope.pem";
    }
    SECTION("garbage") {
        c.listeners[0].tls->cert = pki().garbage;
    }
    auto f = find(auditConfig(c, now()), "cert-unreadable");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
}

TEST_CASE("a certificate shared by listeners is reported once") {
    auto c = cleanConfig();
    c.listeners[0].tls->cert = pki().expiredCert;
    auto second = c.listeners[0];
    second.name = "mqtts-v6";
    second.bind.host = "::";
    c.listeners.push_back(second);
    CHECK(count(auditConfig(c, now()), "cert-expired") == 1);
}

TEST_CASE("CRL configured but missing or unreadable is high") {
    auto c = cleanConfig();
    SECTION("missing") {
        c.listeners[0].tls->crl = pki().dir + "/nope.crl";
    }
    SECTION("garbage") {
        c.listeners[0].tls->crl = pki().garbage;
    }
    SECTION("a certificate, not a CRL") {
        c.listeners[0].tls->crl = pki().caCert;
    }
    auto f = find(auditConfig(c, now()), "crl-unreadable");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
}

TEST_CASE("CRL past its nextUpdate is medium") {
    auto c = cleanConfig();
    c.listeners[0].tls->crl = pki().staleCrl;
    auto f = find(auditConfig(c, now()), "crl-stale");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->message.find("2020-02-01") != std::string::npos);
    // The fresh CRL goes stale once the clock passes its 30 days.
    c = cleanConfig();
    CHECK(find(auditConfig(c, now() + std::chrono::hours(24 * 31)), "crl-stale") != std::nullopt);
}

TEST_CASE("password file: $6$ hashes are medium, few PBKDF2 iterations low") {
    auto c = cleanConfig();
    c.auth.passwordFile = pki().weakPasswd;
    const auto findings = auditConfig(c, now());
    auto f = find(findings, "weak-password-hash");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->subject == "user bob");
    CHECK(count(findings, "weak-password-hash") == 1);  // #erin is a comment
    f = find(findings, "low-pbkdf2-iterations");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    CHECK(f->subject == "user carol");
    CHECK(count(findings, "low-pbkdf2-iterations") == 1);  // dave has 1000
}

TEST_CASE("many weak users collapse into a summary finding") {
    std::string content;
    for (int i = 0; i < 25; ++i) content += "u" + std::to_string(i) + ":$6$c2FsdA==$aGFzaA==\n";
    auto c = cleanConfig();
    c.auth.passwordFile = writeFile("passwd-many", content);
    const auto findings = auditConfig(c, now());
    CHECK(count(findings, "weak-password-hash") == 11);
    bool summary = false;
    for (const auto& f : findings)
        if (f.id == "weak-password-hash" && f.subject == "auth.password_file")
            summary = f.message.rfind("15 more users", 0) == 0;
    CHECK(summary);
}

TEST_CASE("unreadable password file is high") {
    auto c = cleanConfig();
    c.auth.passwordFile = pki().dir + "/no-such-passwd";
    auto f = find(auditConfig(c, now()), "password-file-unreadable");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
}
