#pragma once
// Every Prometheus metric of CONTRACT.md §4, plus a few extensions (moat_backend_up,
// moat_audit_events_suppressed_total). One instance per process, shared by all workers.
//
// The data path never looks a metric up by label: label combinations are resolved once
// (per listener at start-up, per packet type in the constructor, per new reason on first use)
// and the cached Counter*/Gauge* are plain atomics, so an increment takes no lock.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/metrics/LabeledCounter.h"
#include "gateway/metrics/TrafficCollector.h"

namespace moat::metrics {

enum class Direction : uint8_t { ClientToBroker = 0, BrokerToClient = 1 };
enum class AuthMethodLabel : uint8_t { Certificate = 0, Password = 1, Token = 2 };
inline constexpr size_t kAuthMethodLabels = 3;

std::string_view directionLabel(Direction d);
// "CONNECT" … "AUTH" for 1..15, "RESERVED" for 0 and anything out of range.
std::string_view packetTypeLabel(uint8_t packetType);

// The per-listener series, resolved once when the listener starts. Pointers stay valid for the
// lifetime of the Metrics object.
struct ListenerMetrics {
    prometheus::Gauge* active = nullptr;       // moat_connections_active
    prometheus::Counter* accepted = nullptr;   // moat_connections_total{result="accepted"}
    prometheus::Counter* limited = nullptr;    // …{result="limited"}
    prometheus::Counter* banned = nullptr;     // …{result="banned"}
    prometheus::Counter* tlsOk = nullptr;      // moat_tls_handshakes_total{result="ok"}
    prometheus::Counter* tlsFailed = nullptr;  // …{result="failed"}
    // moat_certificate_expiry_seconds; nullptr for a plaintext listener (a 0 there would
    // read as "expires now" and fire the expiry alert).
    prometheus::Gauge* certExpirySeconds = nullptr;
};

class Metrics {
  public:
    Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // Creates the listener's series on first use; later calls return the same object (a later
    // call with tls=true adds the expiry gauge). Meant for start-up (takes a lock), not for the
    // data path.
    ListenerMetrics& listener(const std::string& name, bool tls = true);

    // moat_packets_total / moat_bytes_total are summed at scrape time from per-worker
    // counters (TrafficCollector): workers attach their own TrafficCounters.
    TrafficCollector& traffic() { return traffic_; }

    // One decoded MQTT packet of `bytes` bytes (fixed header included), counted in shared
    // state: for tests and rare off-loop callers only; workers use their TrafficCounters.
    void countPacket(Direction direction, uint8_t packetType, size_t bytes) {
        traffic_.add(direction == Direction::ClientToBroker,
                     packetType >= 1 && packetType <= 15 ? packetType : 0, 1, bytes);
    }

    // 0 ok, 1 failed (the last good keys stay), 2 unknown-kid refresh skipped (rate limit).
    void jwksFetch(size_t result) {
        if (result < jwksFetch_.size()) jwksFetch_[result]->Increment();
    }
    void auth(AuthMethodLabel method, bool success) {
        const auto mi = static_cast<size_t>(method);
        if (mi < kAuthMethodLabels) auth_[mi][success ? 0 : 1]->Increment();
    }
    // action: publish | subscribe | will | deliver | integrity
    void authzDenied(std::string_view action) { authzDenied_.increment(action); }
    // limit: publish_rate | publish_bytes_rate | connection_rate | max_connections | …
    void rateLimited(std::string_view limit) { rateLimited_.increment(limit); }
    void protocolError(std::string_view reason) { protocolErrors_.increment(reason); }
    // reason: client_queue | broker_queue | pending_acks (see ClientConnection's back-pressure)
    void clientReadsPaused(std::string_view reason) { readsPaused_.increment(reason); }
    // kind: auth_failures | topic_scan | connection_storm | publish_spike | …
    void anomaly(std::string_view kind) { anomalies_.increment(kind); }
    void reload(bool ok) { (ok ? reloadOk_ : reloadFailed_)->Increment(); }

    prometheus::Gauge& bansActive() { return *bansActive_; }
    // moat_client_id_refused_total: CONNECTs refused because another identity owns the
    // client id (auth.protect_client_ids); moat_client_id_owners: client ids held now.
    void clientIdRefused() { clientIdRefused_->Increment(); }
    prometheus::Gauge& clientIdOwners() { return *clientIdOwners_; }
    // 1 while the broker is reachable (what /healthz reports), 0 otherwise.
    prometheus::Gauge& backendUp() { return *backendUp_; }
    // Audit events dropped by the audit log's rate limit or full queue (see AuditLog).
    prometheus::Counter& auditSuppressed() { return *auditSuppressed_; }

    // Families computed at scrape time by another layer (e.g. the TLS verified-chain cache's
    // counters), so metrics/ need not depend on it. Start-up only; called under a mutex.
    using Collector = std::function<std::vector<prometheus::MetricFamily>()>;
    void addCollector(Collector collector);

    // Prometheus text exposition format 0.0.4.
    std::string serialize() const;
    prometheus::Registry& registry() { return *registry_; }

  private:
    std::shared_ptr<prometheus::Registry> registry_;

    prometheus::Family<prometheus::Gauge>& connectionsActive_;
    prometheus::Family<prometheus::Counter>& connectionsTotal_;
    prometheus::Family<prometheus::Counter>& tlsHandshakes_;
    prometheus::Family<prometheus::Gauge>& certExpiry_;
    prometheus::Family<prometheus::Counter>& authTotal_;
    prometheus::Family<prometheus::Counter>& authzDeniedFamily_;
    prometheus::Family<prometheus::Counter>& rateLimitedFamily_;
    prometheus::Family<prometheus::Counter>& protocolErrorsFamily_;
    prometheus::Family<prometheus::Gauge>& bansActiveFamily_;
    prometheus::Family<prometheus::Counter>& anomaliesFamily_;
    prometheus::Family<prometheus::Counter>& reloadsFamily_;
    prometheus::Family<prometheus::Gauge>& backendUpFamily_;
    prometheus::Family<prometheus::Counter>& auditSuppressedFamily_;
    prometheus::Family<prometheus::Counter>& readsPausedFamily_;
    prometheus::Family<prometheus::Counter>& clientIdRefusedFamily_;
    prometheus::Family<prometheus::Gauge>& clientIdOwnersFamily_;

    TrafficCollector traffic_;
    // [method][success, failure]
    std::array<std::array<prometheus::Counter*, 2>, kAuthMethodLabels> auth_{};
    // JWKS fetches of auth.token.jwks_url by result (ok | failed | skipped).
    std::array<prometheus::Counter*, 3> jwksFetch_{};
    LabeledCounter authzDenied_;
    LabeledCounter rateLimited_;
    LabeledCounter protocolErrors_;
    LabeledCounter anomalies_;
    LabeledCounter readsPaused_;
    prometheus::Counter* reloadOk_ = nullptr;
    prometheus::Counter* reloadFailed_ = nullptr;
    prometheus::Gauge* bansActive_ = nullptr;
    prometheus::Counter* clientIdRefused_ = nullptr;
    prometheus::Gauge* clientIdOwners_ = nullptr;
    prometheus::Gauge* backendUp_ = nullptr;
    prometheus::Counter* auditSuppressed_ = nullptr;

    mutable std::mutex collectorsMutex_;
    std::vector<Collector> collectors_;

    std::mutex listenersMutex_;
    std::map<std::string, std::unique_ptr<ListenerMetrics>, std::less<>> listeners_;
};

}  // namespace moat::metrics
