#include "gateway/metrics/Metrics.h"

#include <prometheus/text_serializer.h>

namespace moat::metrics {
namespace {

constexpr std::array<std::string_view, 16> kPacketTypes = {
    "RESERVED", "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
    "PUBREL",   "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
    "PINGREQ",  "PINGRESP", "DISCONNECT", "AUTH"};

template <typename T>
prometheus::Family<T>& family(prometheus::Registry& registry, const char* name, const char* help) {
    if constexpr (std::is_same_v<T, prometheus::Counter>) {
        return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
    } else {
        return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
    }
}

}  // namespace

std::string_view directionLabel(Direction d) {
    return d == Direction::ClientToBroker ? "client_to_broker" : "broker_to_client";
}

std::string_view packetTypeLabel(uint8_t packetType) {
    return packetType < kPacketTypes.size() ? kPacketTypes[packetType] : kPacketTypes[0];
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      connectionsActive_(family<prometheus::Gauge>(*registry_, "moat_connections_active",
                                                   "Client connections currently open.")),
      connectionsTotal_(family<prometheus::Counter>(
          *registry_, "moat_connections_total",
          "Client TCP connections by admission result (accepted, limited, banned).")),
      tlsHandshakes_(family<prometheus::Counter>(*registry_, "moat_tls_handshakes_total",
                                                 "TLS handshakes by result.")),
      certExpiry_(family<prometheus::Gauge>(*registry_, "moat_certificate_expiry_seconds",
                                            "Seconds until the listener's server certificate "
                                            "expires (negative once expired).")),
      authTotal_(family<prometheus::Counter>(*registry_, "moat_auth_total",
                                             "Authentication factor checks by method and result.")),
      authzDeniedFamily_(family<prometheus::Counter>(*registry_, "moat_authz_denied_total",
                                                     "Operations denied by the topic policy.")),
      rateLimitedFamily_(family<prometheus::Counter>(*registry_, "moat_rate_limited_total",
                                                     "Events refused or throttled by a limit.")),
      protocolErrorsFamily_(family<prometheus::Counter>(
          *registry_, "moat_protocol_errors_total", "Connections closed for a protocol error.")),
      bansActiveFamily_(family<prometheus::Gauge>(*registry_, "moat_bans_active",
                                                  "Bans (IPs and identities) currently in force.")),
      anomaliesFamily_(family<prometheus::Counter>(*registry_, "moat_anomalies_total",
                                                   "Anomalies raised by the detector, by kind.")),
      reloadsFamily_(family<prometheus::Counter>(*registry_, "moat_config_reloads_total",
                                                 "Configuration reloads (SIGHUP) by result.")),
      backendUpFamily_(family<prometheus::Gauge>(*registry_, "moat_backend_up",
                                                 "1 while the broker is reachable, else 0.")),
      auditSuppressedFamily_(family<prometheus::Counter>(
          *registry_, "moat_audit_events_suppressed_total",
          "Audit events dropped by the audit log rate limit or a full queue.")),
      readsPausedFamily_(family<prometheus::Counter>(
          *registry_, "moat_client_reads_paused_total",
          "Times the gateway stopped reading a client: its outbound queue (client_queue) or "
          "the broker's (broker_queue) passed the high-water mark, or too many of its "
          "SUBSCRIBE filters await the broker's answer (pending_acks).")),
      clientIdRefusedFamily_(family<prometheus::Counter>(
          *registry_, "moat_client_id_refused_total",
          "CONNECTs refused because another identity owns the client id "
          "(auth.protect_client_ids).")),
      clientIdOwnersFamily_(family<prometheus::Gauge>(
          *registry_, "moat_client_id_owners",
          "Client ids held by an identity (connected, or within their hold).")),
      authzDenied_(authzDeniedFamily_, "action",
                   {"publish", "subscribe", "will", "deliver", "integrity"}),
      rateLimited_(rateLimitedFamily_, "limit",
                   {"publish_rate", "publish_bytes_rate", "connection_rate", "max_connections",
                    "max_connections_per_ip"}),
      protocolErrors_(protocolErrorsFamily_, "reason", {}),
      anomalies_(anomaliesFamily_, "kind",
                 {"auth_failures", "topic_scan", "connection_storm", "publish_spike"}),
      readsPaused_(readsPausedFamily_, "reason", {"client_queue", "broker_queue", "pending_acks"}) {
    for (auto m :
         {AuthMethodLabel::Certificate, AuthMethodLabel::Password, AuthMethodLabel::Token}) {
        const std::string method = m == AuthMethodLabel::Certificate ? "certificate"
                                   : m == AuthMethodLabel::Password  ? "password"
                                                                     : "token";
        const auto mi = static_cast<size_t>(m);
        auth_[mi][0] = &authTotal_.Add({{"method", method}, {"result", "success"}});
        auth_[mi][1] = &authTotal_.Add({{"method", method}, {"result", "failure"}});
    }
    auto& jwks = family<prometheus::Counter>(
        *registry_, "moat_jwks_fetch_total",
        "Fetches of auth.token.jwks_url: ok, failed (the last good keys stay in use), skipped "
        "(an unknown-kid refresh within the rate limit).");
    jwksFetch_[0] = &jwks.Add({{"result", "ok"}});
    jwksFetch_[1] = &jwks.Add({{"result", "failed"}});
    jwksFetch_[2] = &jwks.Add({{"result", "skipped"}});
    reloadOk_ = &reloadsFamily_.Add({{"result", "ok"}});
    reloadFailed_ = &reloadsFamily_.Add({{"result", "failed"}});
    bansActive_ = &bansActiveFamily_.Add({});
    clientIdRefused_ = &clientIdRefusedFamily_.Add({});
    clientIdOwners_ = &clientIdOwnersFamily_.Add({});
    backendUp_ = &backendUpFamily_.Add({});
    auditSuppressed_ = &auditSuppressedFamily_.Add({});
}

ListenerMetrics& Metrics::listener(const std::string& name, bool tls) {
    std::lock_guard lock(listenersMutex_);
    auto it = listeners_.find(name);
    if (it != listeners_.end()) {
        if (tls && it->second->certExpirySeconds == nullptr) {
            it->second->certExpirySeconds = &certExpiry_.Add({{"listener", name}});
        }
        return *it->second;
    }
    auto m = std::make_unique<ListenerMetrics>();
    m->active = &connectionsActive_.Add({{"listener", name}});
    m->accepted = &connectionsTotal_.Add({{"listener", name}, {"result", "accepted"}});
    m->limited = &connectionsTotal_.Add({{"listener", name}, {"result", "limited"}});
    m->banned = &connectionsTotal_.Add({{"listener", name}, {"result", "banned"}});
    m->tlsOk = &tlsHandshakes_.Add({{"listener", name}, {"result", "ok"}});
    m->tlsFailed = &tlsHandshakes_.Add({{"listener", name}, {"result", "failed"}});
    if (tls) m->certExpirySeconds = &certExpiry_.Add({{"listener", name}});
    return *listeners_.emplace(name, std::move(m)).first->second;
}

void Metrics::addCollector(Collector collector) {
    std::lock_guard lock(collectorsMutex_);
    collectors_.push_back(std::move(collector));
}

std::string Metrics::serialize() const {
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    for (auto& f : traffic_.Collect()) families.push_back(std::move(f));
    {
        std::lock_guard lock(collectorsMutex_);
        for (const Collector& c : collectors_) {
            for (auto& f : c()) families.push_back(std::move(f));
        }
    }
    return prometheus::TextSerializer().Serialize(families);
}

}  // namespace moat::metrics
