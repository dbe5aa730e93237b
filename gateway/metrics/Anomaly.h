#pragma once

#include <cstdint>
#include <string>

namespace moat::metrics {

// One raised anomaly: count it in moat_anomalies_total{kind} and write an `anomaly` audit event.
struct Anomaly {
    std::string kind;     // auth_failures | topic_scan | connection_storm | publish_spike
    std::string subject;  // "ip=203.0.113.7", "identity=bob", "connection=42", "client=…"
    uint64_t count = 0;   // events in the window that raised it (estimate for sliding counts)
};

}  // namespace moat::metrics
