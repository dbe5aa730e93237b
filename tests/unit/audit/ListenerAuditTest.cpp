#include <catch2/catch.hpp>

#include "AuditTestUtil.h"
#include "gateway/audit/Checks.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;
using Severity = Finding::Severity;

TEST_CASE("clean config has no high finding and none about listeners or limits") {
    const auto findings = auditConfig(cleanConfig(), now());
    INFO(formatText(findings));
    CHECK_FALSE(hasHigh(findings));
    for (const char* id :
         {"plaintext-listener",    "weak-ciphers",    "no-client-auth",   "no-crl",
          "cert-expired",          "cert-expiring",   "crl-stale",        "crl-unreadable",
          "missing-limit",         "loose-limit",     "anonymous-access", "weak-password-hash",
          "low-pbkdf2-iterations", "unused-role",     "role-publish-all", "role-subscribe-all",
          "shared-publish-rule",   "metrics-exposed", "remote-backend",   "check-deliveries-off"}) {
        INFO(id);
        CHECK(find(findings, id) == std::nullopt);
    }
}

TEST_CASE("plaintext listener: high on a public address, medium on loopback") {
    auto c = cleanConfig();
    config::ListenerConfig plain;
    plain.name = "mqtt";
    plain.bind = {"0.0.0.0", 1883};
    c.listeners.push_back(plain);
    auto f = find(auditConfig(c, now()), "plaintext-listener");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->subject == "listener mqtt");
    CHECK(f->message.find("0.0.0.0:1883") != std::string::npos);

    for (const char* host : {"127.0.0.1", "127.9.9.9", "::1", "localhost", "::ffff:127.0.0.1"}) {
        INFO(host);
        c.listeners.back().bind.host = host;
        f = find(auditConfig(c, now()), "plaintext-listener");
        REQUIRE(f);
        CHECK(f->severity == Severity::Medium);
    }
    for (const char* host : {"::", "10.0.0.1", "2001:db8::1", "example.com", ""}) {
        INFO(host);
        c.listeners.back().bind.host = host;
        f = find(auditConfig(c, now()), "plaintext-listener");
        REQUIRE(f);
        CHECK(f->severity == Severity::High);
    }
}

TEST_CASE("TLS min version below 1.2 is high") {
    auto c = cleanConfig();
    c.listeners[0].tls->minVersion = "1.0";
    auto f = find(auditConfig(c, now()), "tls-min-version");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    c.listeners[0].tls->minVersion = "1.3";
    CHECK(find(auditConfig(c, now()), "tls-min-version") == std::nullopt);
}

TEST_CASE("weak ciphers") {
    auto audit = [](const std::string& ciphers) {
        auto c = cleanConfig();
        c.listeners[0].tls->ciphers = ciphers;
        return find(auditConfig(c, now()), "weak-ciphers");
    };

    SECTION("explicit weak names are high even when OpenSSL lacks the suite") {
        for (const char* s :
             {"RC4-SHA", "ECDHE+AESGCM:RC4", "aNULL", "eNULL", "NULL-SHA", "EXP-RC4-MD5",
              "DES-CBC-SHA", "ADH-AES128-SHA", "HIGH:@SECLEVEL=0", "ECDHE+AESGCM, EXPORT"}) {
            INFO(s);
            auto f = audit(s);
            REQUIRE(f);
            CHECK(f->severity == Severity::High);
            CHECK(f->subject == "listener mqtts");
        }
    }
    SECTION("3DES, MD5 and CBC-SHA1 suites are medium") {
        for (const char* s : {"DES-CBC3-SHA", "ECDHE+3DES", "ECDHE-RSA-AES128-SHA",
                              "ECDHE-ECDSA-AES256-SHA", "HMAC-MD5"}) {
            INFO(s);
            auto f = audit(s);
            REQUIRE(f);
            CHECK(f->severity == Severity::Medium);
        }
    }
    SECTION("keywords that expand to weak suites are caught") {
        auto f = audit("ALL");
        REQUIRE(f);
        CHECK(f->severity == Severity::High);  // ALL includes anonymous (aNULL) suites
        f = audit("COMPLEMENTOFALL");
        REQUIRE(f);
        CHECK(f->severity == Severity::High);  // eNULL
    }
    SECTION("RSA key exchange alone is low") {
        auto f = audit("AES128-GCM-SHA256");
        REQUIRE(f);
        CHECK(f->severity == Severity::Low);
    }
    SECTION("strong strings and exclusions are clean") {
        for (const char* s : {"ECDHE+AESGCM:ECDHE+CHACHA20", "ECDHE+AESGCM:!aNULL:!eNULL:!RC4",
                              "ECDHE-ECDSA-AES128-GCM-SHA256:-3DES:!MD5", "ECDHE+AESGCM:+AES256",
                              "no-such-cipher"}) {
            INFO(s);
            CHECK(audit(s) == std::nullopt);
        }
    }
}

TEST_CASE("weakCiphers lists each weakness once, worst first") {
    const auto weak = detail::weakCiphers("DES-CBC3-SHA:RC4:RC4");
    REQUIRE(weak.size() >= 2);
    CHECK(weak.front().severity == Severity::High);
    size_t rc4 = 0;
    for (const auto& w : weak) rc4 += w.suite == "RC4" && w.reason == "RC4";
    CHECK(rc4 == 1);
}

TEST_CASE("listener without client-cert verification and without passwords is high") {
    auto c = cleanConfig();
    c.auth.methods = {config::AuthMethod::Certificate};
    c.auth.passwordFile.clear();
    CHECK(find(auditConfig(c, now()), "no-client-auth") == std::nullopt);

    SECTION("require_client_cert false") {
        c.listeners[0].tls->requireClientCert = false;
    }
    SECTION("no client_ca") {
        c.listeners[0].tls->clientCa.clear();
        c.listeners[0].tls->requireClientCert = false;
    }
    SECTION("certificate method not accepted") {
        c.auth.methods = {config::AuthMethod::Password};
    }
    SECTION("plaintext") {
        c.listeners[0].tls.reset();
    }
    auto findings = auditConfig(c, now());
    auto f = find(findings, "no-client-auth");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->subject == "listener mqtts");
}

TEST_CASE("a password method makes a listener without client certs authenticated") {
    auto c = cleanConfig();
    c.listeners[0].tls->requireClientCert = false;
    c.listeners[0].tls->clientCa.clear();
    CHECK(find(auditConfig(c, now()), "no-client-auth") == std::nullopt);
    // Password listed as a method but no password file: no password factor at all.
    c.auth.passwordFile.clear();
    CHECK(find(auditConfig(c, now()), "no-client-auth") != std::nullopt);
}

TEST_CASE("mTLS listener without a CRL is low") {
    auto c = cleanConfig();
    c.listeners[0].tls->crl.clear();
    auto f = find(auditConfig(c, now()), "no-crl");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    // Without client certificates there is nothing to revoke.
    c.listeners[0].tls->requireClientCert = false;
    CHECK(find(auditConfig(c, now()), "no-crl") == std::nullopt);
}

TEST_CASE("FFDHE key exchange groups are medium; the default groups are clean") {
    auto c = cleanConfig();
    CHECK(find(auditConfig(c, now()), "ffdhe-groups") == std::nullopt);
    c.listeners[0].tls->groups = "X25519:ffdhe2048:ffdhe8192";
    auto f = find(auditConfig(c, now()), "ffdhe-groups");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->message.find("ffdhe2048, ffdhe8192") != std::string::npos);
}

TEST_CASE("WebSocket listeners: plain ws is flagged; certificates need an Origin allowlist") {
    auto c = cleanConfig();
    config::ListenerConfig ws;
    ws.name = "ws";
    ws.bind = {"0.0.0.0", 8080};
    ws.websocket.emplace();
    c.listeners.push_back(ws);
    auto f = find(auditConfig(c, now()), "plaintext-listener");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->message.find("WebSocket (ws://) 0.0.0.0:8080") != std::string::npos);
    CHECK_FALSE(find(auditConfig(c, now()), "websocket-no-origins"));

    // wss with the clean config's client CA: a browser presents its certificate by itself.
    c.listeners.back().tls = c.listeners[0].tls;
    f = find(auditConfig(c, now()), "websocket-no-origins");
    REQUIRE(f);
    CHECK(f->severity == Severity::High);
    CHECK(f->subject == "listener ws");
    c.listeners.back().websocket->allowedOrigins =
        std::vector<std::string>{"https://dash.example.com"};
    CHECK_FALSE(find(auditConfig(c, now()), "websocket-no-origins"));
    // Without a client CA no certificate is ever accepted there.
    c.listeners.back().websocket->allowedOrigins.reset();
    c.listeners.back().tls->clientCa.clear();
    c.listeners.back().tls->requireClientCert = false;
    CHECK_FALSE(find(auditConfig(c, now()), "websocket-no-origins"));
}
