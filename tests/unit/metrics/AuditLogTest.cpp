#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/metrics/AuditLog.h"

using moat::metrics::AuditEvent;
using moat::metrics::AuditExtra;
using moat::metrics::AuditLog;

namespace {

// A scratch file and a fake clock driving the one-second windows.
struct Fixture {
    std::string path;
    AuditLog::Clock::time_point now = AuditLog::Clock::time_point(std::chrono::hours(1));

    Fixture() {
        char tmpl[] = "/tmp/moat-audit-test-XXXXXX";
        const int fd = mkstemp(tmpl);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = tmpl;
    }
    ~Fixture() { ::unlink(path.c_str()); }

    std::unique_ptr<AuditLog> open(uint32_t maxPerSecond) {
        moat::config::AuditConfig cfg;
        cfg.log = path;
        cfg.maxEventsPerSecond = maxPerSecond;
        auto log = std::make_unique<AuditLog>(cfg, [this] { return now; });
        std::string error;
        REQUIRE(log->open(error));
        return log;
    }

    std::vector<std::string> lines() const {
        std::ifstream in(path);
        std::vector<std::string> out;
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }
};

AuditEvent event(std::string_view kind, std::string_view remote) {
    return AuditEvent{.event = kind, .listener = "mqtts", .remote = remote};
}

// Crude field extraction: enough for lines this log itself wrote.
std::string field(const std::string& line, const std::string& key) {
    const std::string k = "\"" + key + "\":";
    const auto at = line.find(k);
    if (at == std::string::npos) return "";
    auto from = at + k.size();
    if (line[from] == '"') {
        const auto end = line.find('"', from + 1);
        return line.substr(from + 1, end - from - 1);
    }
    const auto end = line.find_first_of(",}", from);
    return line.substr(from, end - from);
}

std::vector<std::string> withEvent(const std::vector<std::string>& lines, std::string_view kind) {
    std::vector<std::string> out;
    for (const auto& l : lines) {
        if (field(l, "event") == kind) out.push_back(l);
    }
    return out;
}

}  // namespace

TEST_CASE("format writes the contract's fields in one JSON line") {
    std::string out;
    const std::array<AuditExtra, 1> extra{{{"events", "connect"}}};
    AuditEvent e{.event = "authz_denied",
                 .listener = "mqtts",
                 .remote = "198.51.100.7:1234",
                 .clientId = "dev\n1",
                 .identity = "dev1",
                 .protocol = "5.0",
                 .action = "publish",
                 .topic = "a/\"b\"",
                 .rule = "default deny",
                 .count = 3,
                 .extra = extra};
    AuditLog::format(out, e,
                     std::chrono::system_clock::time_point(std::chrono::milliseconds(1234)));
    CHECK(out ==
          "{\"ts\":\"1970-01-01T00:00:01.234Z\",\"event\":\"authz_denied\",\"listener\":\"mqtts\","
          "\"remote\":\"198.51.100.7:1234\",\"client_id\":\"dev\\n1\",\"identity\":\"dev1\","
          "\"protocol\":\"5.0\",\"action\":\"publish\",\"topic\":\"a/\\\"b\\\"\","
          "\"rule\":\"default deny\",\"count\":3,\"events\":\"connect\"}");
}

TEST_CASE("sourceOf takes the address out of every remote form") {
    CHECK(AuditLog::sourceOf("203.0.113.9:4242") == "203.0.113.9");
    CHECK(AuditLog::sourceOf("203.0.113.9") == "203.0.113.9");
    CHECK(AuditLog::sourceOf("[2001:db8::1]:8883") == "2001:db8::1");
    CHECK(AuditLog::sourceOf("2001:db8::1") == "2001:db8::1");
    CHECK(AuditLog::sourceOf("").empty());
}

TEST_CASE("the reserved kinds are the ones an operator must not miss") {
    for (auto k : {"auth_failure", "ban", "authz_denied", "reload", "anomaly"})
        CHECK(AuditLog::isReservedKind(k));
    for (auto k : {"connect", "disconnect", "rate_limited", "protocol_error", "cluster"})
        CHECK_FALSE(AuditLog::isReservedKind(k));
}

TEST_CASE("budgets derive from max_events_per_second") {
    Fixture f;
    auto log = f.open(1000);
    CHECK(log->perSourceBudget() == 100);
    CHECK(log->reservedBudget() == 250);
    auto small = f.open(20);
    CHECK(small->perSourceBudget() == 10);
    auto tiny = f.open(3);
    CHECK(tiny->perSourceBudget() == 3);
}

TEST_CASE("one flooding address is cut at its share; another address is still logged") {
    Fixture f;
    auto log = f.open(100);  // per source 10, reserved 25
    for (int i = 0; i < 5000; ++i) log->log(event("rate_limited", "10.0.0.1"));
    log->log(event("auth_failure", "10.0.0.2:5555"));
    log->log(event("connect", "10.0.0.3:5556"));
    log->flush();
    auto lines = f.lines();
    CHECK(withEvent(lines, "rate_limited").size() == 10);
    REQUIRE(withEvent(lines, "auth_failure").size() == 1);
    CHECK(field(withEvent(lines, "auth_failure")[0], "remote") == "10.0.0.2:5555");
    CHECK(withEvent(lines, "connect").size() == 1);
    CHECK(withEvent(lines, "audit_suppressed").empty());  // summarised when the second ends

    f.now += std::chrono::milliseconds(1000);
    log->flush();
    lines = f.lines();
    const auto summaries = withEvent(lines, "audit_suppressed");
    REQUIRE(summaries.size() == 1);  // one per flooding address, none anonymous
    CHECK(field(summaries[0], "remote") == "10.0.0.1");
    CHECK(field(summaries[0], "count") == "4990");
    CHECK(field(summaries[0], "events") == "rate_limited");
    CHECK(field(summaries[0], "reason") == "rate_limit");
    CHECK(log->suppressedTotal() == 4990);
}

TEST_CASE("a new window gives the flooding address its share again") {
    Fixture f;
    auto log = f.open(100);
    for (int i = 0; i < 50; ++i) log->log(event("connect", "10.0.0.1:1"));
    f.now += std::chrono::milliseconds(1000);
    for (int i = 0; i < 50; ++i) log->log(event("connect", "10.0.0.1:1"));
    f.now += std::chrono::milliseconds(1000);
    log->flush();
    const auto lines = f.lines();
    CHECK(withEvent(lines, "connect").size() == 20);
    const auto summaries = withEvent(lines, "audit_suppressed");
    REQUIRE(summaries.size() == 2);  // one per address per second
    for (const auto& s : summaries) CHECK(field(s, "count") == "40");
}

TEST_CASE("the summary names every kind the address lost") {
    Fixture f;
    auto log = f.open(100);
    for (int i = 0; i < 20; ++i) log->log(event("connect", "10.0.0.1:1"));
    log->log(event("auth_failure", "10.0.0.1:2"));
    log->log(event("weird_kind", "10.0.0.1:3"));
    f.now += std::chrono::milliseconds(1000);
    log->flush();
    const auto summaries = withEvent(f.lines(), "audit_suppressed");
    REQUIRE(summaries.size() == 1);
    CHECK(field(summaries[0], "events") == "connect,auth_failure,other");
    CHECK(field(summaries[0], "count") == "12");
}

TEST_CASE("many addresses cannot use the reserved share") {
    Fixture f;
    auto log = f.open(100);  // general budget 75, reserved 25
    for (int a = 0; a < 50; ++a) {
        const std::string remote = "10.1.0." + std::to_string(a) + ":1";
        for (int i = 0; i < 5; ++i) log->log(event("connect", remote));
    }
    for (int a = 0; a < 20; ++a) {
        const std::string remote = "10.2.0." + std::to_string(a) + ":1";
        log->log(event(a % 2 ? "ban" : "auth_failure", remote));
    }
    log->log(event("reload", ""));
    log->flush();
    const auto lines = f.lines();
    CHECK(withEvent(lines, "connect").size() == 75);
    CHECK(withEvent(lines, "auth_failure").size() == 10);
    CHECK(withEvent(lines, "ban").size() == 10);
    CHECK(withEvent(lines, "reload").size() == 1);
}

TEST_CASE("the per-source table is bounded; untracked addresses meet the global budget") {
    Fixture f;
    auto log = f.open(100000);  // per source 10000
    const size_t extra = 2;
    for (size_t a = 0; a < AuditLog::kMaxSources + extra; ++a) {
        const std::string remote =
            "10." + std::to_string(a / 256) + "." + std::to_string(a % 256) + ".1:1";
        for (int i = 0; i < 10001; ++i) {
            if (a < AuditLog::kMaxSources && i > 0 && i < 10000) continue;  // keep it quick
            log->log(event("connect", remote));
        }
    }
    // Tracked addresses used 2 each; untracked ones were all logged (global budget not hit).
    f.now += std::chrono::milliseconds(1000);
    log->flush();
    const auto lines = f.lines();
    CHECK(withEvent(lines, "audit_suppressed").empty());
    CHECK(withEvent(lines, "connect").size() == AuditLog::kMaxSources * 2 + extra * 10001);
}

TEST_CASE("events without an address only meet the global budget and summarise anonymously") {
    Fixture f;
    auto log = f.open(20);  // general 15
    for (int i = 0; i < 30; ++i) log->log(event("cluster", ""));
    f.now += std::chrono::milliseconds(1000);
    log->flush();
    const auto lines = f.lines();
    CHECK(withEvent(lines, "cluster").size() == 15);
    const auto summaries = withEvent(lines, "audit_suppressed");
    REQUIRE(summaries.size() == 1);
    CHECK(field(summaries[0], "remote").empty());
    CHECK(field(summaries[0], "count") == "15");
}

TEST_CASE("max_events_per_second 0 logs everything") {
    Fixture f;
    auto log = f.open(0);
    for (int i = 0; i < 3000; ++i) log->log(event("connect", "10.0.0.1:1"));
    log->flush();
    CHECK(withEvent(f.lines(), "connect").size() == 3000);
    CHECK(log->suppressedTotal() == 0);
}

TEST_CASE("the destructor writes the last window's summaries") {
    Fixture f;
    {
        auto log = f.open(10);  // general budget 8 (2 reserved)
        for (int i = 0; i < 15; ++i) log->log(event("connect", "10.0.0.1:1"));
    }
    const auto summaries = withEvent(f.lines(), "audit_suppressed");
    REQUIRE(summaries.size() == 1);
    CHECK(field(summaries[0], "count") == "7");
}

TEST_CASE(
    "audit budget: an address's first event of a reserved kind is written past a spent budget") {
    Fixture f;
    auto log = f.open(100);
    // Ten addresses spend the whole budget (a tenth each) on denials.
    for (int a = 0; a < 10; ++a) {
        const std::string remote = "127.0.0." + std::to_string(10 + a) + ":1000";
        for (int i = 0; i < 50; ++i) log->log(event("authz_denied", remote));
    }
    const uint64_t before = log->suppressedTotal();
    // Another address: its first denial is written, its second (same kind) is not; its first
    // failed login is written too; an ordinary kind gets no floor.
    log->log(event("authz_denied", "127.0.0.99:1"));
    CHECK(log->suppressedTotal() == before);
    log->log(event("authz_denied", "127.0.0.99:1"));
    CHECK(log->suppressedTotal() == before + 1);
    log->log(event("auth_failure", "127.0.0.99:2"));
    CHECK(log->suppressedTotal() == before + 1);
    log->log(event("connect", "127.0.0.99:3"));
    CHECK(log->suppressedTotal() == before + 2);
}
