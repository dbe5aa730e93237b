#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "gateway/metrics/AnomalyDetector.h"
#include "gateway/metrics/JsonEscape.h"

using moat::metrics::AnomalyDetector;
using namespace std::chrono_literals;

namespace {

moat::config::AnomalyConfig config(uint32_t authFailures = 3, uint32_t storm = 3) {
    moat::config::AnomalyConfig c;
    c.authFailures = authFailures;
    c.connectionStorm = storm;
    c.window = std::chrono::milliseconds(60000);
    return c;
}

const AnomalyDetector::time_point t0{std::chrono::hours(1)};

}  // namespace

TEST_CASE("repeated failed logins from one address raise one anomaly per window") {
    AnomalyDetector d(config());
    CHECK_FALSE(d.onAuthFailure("198.51.100.1", "", t0));
    CHECK_FALSE(d.onAuthFailure("198.51.100.1", "", t0 + 1s));
    auto a = d.onAuthFailure("198.51.100.1", "", t0 + 2s);
    REQUIRE(a);
    CHECK(a->kind == "auth_failures");
    CHECK(a->subject == "ip=198.51.100.1");
    CHECK(a->count == 3);
    CHECK_FALSE(d.onAuthFailure("198.51.100.1", "", t0 + 3s));              // already raised
    CHECK(d.onAuthFailure("198.51.100.1", "", t0 + 130s) == std::nullopt);  // a fresh window
}

TEST_CASE("failures for one identity from many addresses raise an anomaly for it") {
    AnomalyDetector d(config());
    CHECK_FALSE(d.onAuthFailure("198.51.100.1", "bob", t0));
    CHECK_FALSE(d.onAuthFailure("198.51.100.2", "bob", t0));
    auto a = d.onAuthFailure("198.51.100.3", "bob", t0);
    REQUIRE(a);
    CHECK(a->subject == "identity=bob");
}

TEST_CASE("the subject keeps a claimed username verbatim; output escapes it") {
    // The detector records what the client sent; the text log quotes it and the audit log
    // JSON-encodes it, so newlines in a username never reach a log line raw.
    const std::string forged = "x\n{\"event\":\"connect\"}\n";
    AnomalyDetector d(config(1));
    auto a = d.onAuthFailure("198.51.100.1", forged, t0);
    REQUIRE(a);
    CHECK(a->subject == "ip=198.51.100.1,identity=" + forged);
    const std::string printed = moat::metrics::quoteForLog(a->subject);
    CHECK(printed.find('\n') == std::string::npos);
}

TEST_CASE("a connection storm from one address") {
    AnomalyDetector d(config());
    CHECK_FALSE(d.onConnection("203.0.113.5", t0));
    CHECK_FALSE(d.onConnection("203.0.113.6", t0));
    CHECK_FALSE(d.onConnection("203.0.113.5", t0));
    auto a = d.onConnection("203.0.113.5", t0);
    REQUIRE(a);
    CHECK(a->kind == "connection_storm");
    CHECK(a->subject == "ip=203.0.113.5");
}

TEST_CASE("tables are bounded and swept") {
    AnomalyDetector d(config(100, 100), 16);
    for (int i = 0; i < 1000; ++i) {
        const std::string ip = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
        d.onAuthFailure(ip, "user" + std::to_string(i), t0);
        d.onConnection(ip, t0);
    }
    CHECK(d.sizes().authIps <= 16);
    CHECK(d.sizes().authIdentities <= 16);
    CHECK(d.sizes().connectionIps <= 16);
    d.sweep(t0 + 1h);
    CHECK(d.sizes().authIps == 0);
    CHECK(d.sizes().connectionIps == 0);
}

TEST_CASE("a threshold of 0 disables the detection") {
    AnomalyDetector d(config(0, 0));
    for (int i = 0; i < 10; ++i) {
        CHECK_FALSE(d.onAuthFailure("198.51.100.1", "bob", t0));
        CHECK_FALSE(d.onConnection("198.51.100.1", t0));
    }
}
