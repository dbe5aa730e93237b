#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "gateway/metrics/AuditLog.h"
#include "gateway/metrics/Metrics.h"

using moat::metrics::AuditEvent;
using moat::metrics::AuditLog;
using moat::metrics::Metrics;

TEST_CASE("packet type labels cover every type and nothing else") {
    CHECK(moat::metrics::packetTypeLabel(1) == "CONNECT");
    CHECK(moat::metrics::packetTypeLabel(3) == "PUBLISH");
    CHECK(moat::metrics::packetTypeLabel(15) == "AUTH");
    CHECK(moat::metrics::packetTypeLabel(0) == "RESERVED");
    CHECK(moat::metrics::packetTypeLabel(200) == "RESERVED");
}

TEST_CASE("every audit event cut by the per-source budget is counted in Prometheus") {
    Metrics metrics;
    char tmpl[] = "/tmp/moat-metrics-test-XXXXXX";
    const int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    {
        moat::config::AuditConfig cfg;
        cfg.log = tmpl;
        cfg.maxEventsPerSecond = 100;  // 10 per source
        const auto now = AuditLog::Clock::time_point(std::chrono::hours(1));
        AuditLog log(cfg, [now] { return now; });
        std::string error;
        REQUIRE(log.open(error));
        log.setSuppressedCounter(&metrics.auditSuppressed());
        for (int i = 0; i < 25; ++i)
            log.log(AuditEvent{.event = "rate_limited", .remote = "192.0.2.1"});
        CHECK(log.suppressedTotal() == 15);
    }
    CHECK(metrics.auditSuppressed().Value() == 15);
    CHECK(metrics.serialize().find("moat_audit_events_suppressed_total 15") != std::string::npos);
    ::unlink(tmpl);
}
