// Global settings: anonymous access, limits, bans, delivery checks, exposure of the metrics,
// endpoint, the plaintext broker connection and an unauthenticated cluster Redis.

#include "gateway/audit/Checks.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;

namespace {

constexpr auto kMaxHandshakeTimeout = std::chrono::seconds(60);
constexpr uint32_t kMaxPacketSize = 16u * 1024 * 1024;

void missing(Findings& out, const char* key, const std::string& message, const std::string& fix) {
    out.push_back({Severity::Medium, "missing-limit", std::string("limits.") + key, message, fix});
}

void auditLimits(const config::LimitsConfig& l, Findings& out) {
    if (l.publishRate.unlimited())
        missing(out, "publish_rate",
                "publish_rate is unlimited: one client can flood the broker with messages",
                "set limits.publish_rate, e.g. 100/s");
    if (l.publishBytesRate.unlimited())
        missing(out, "publish_bytes_rate",
                "publish_bytes_rate is unlimited: one client can saturate the broker's bandwidth",
                "set limits.publish_bytes_rate, e.g. 1MiB/s");
    if (l.maxConnectionsPerIp == 0)
        missing(out, "max_connections_per_ip",
                "max_connections_per_ip is 0 (unlimited): one host can exhaust the connection "
                "table",
                "set limits.max_connections_per_ip, e.g. 100");
    if (l.connectionRatePerIp.unlimited())
        missing(out, "connection_rate_per_ip",
                "connection_rate_per_ip is unlimited: one host can force TLS handshakes at will",
                "set limits.connection_rate_per_ip, e.g. 20/s");
    if (l.maxConnections == 0)
        missing(out, "max_connections",
                "max_connections is 0 (unlimited): memory and file descriptors are unbounded",
                "set limits.max_connections, e.g. 10000");
    if (l.maxSubscriptions == 0)
        missing(out, "max_subscriptions",
                "max_subscriptions is 0 (unlimited): one client can bloat the broker's "
                "subscription tree",
                "set limits.max_subscriptions, e.g. 100");
    if (l.handshakeTimeout > kMaxHandshakeTimeout) {
        out.push_back({Severity::Medium, "loose-limit", "limits.handshake_timeout",
                       "handshake_timeout is " + std::to_string(l.handshakeTimeout.count() / 1000) +
                           "s: slow clients (slowloris) can hold connections open for a long "
                           "time without authenticating",
                       "set limits.handshake_timeout to 60s or less (default 10s)"});
    }
    if (l.v3Keepalive == config::V3Keepalive::Accept && l.maxKeepalive.count() > 0) {
        out.push_back({Severity::Low, "v3-keepalive-accepted", "limits.v3_keepalive",
                       "MQTT 3.x clients with keepalive 0 or above max_keepalive are accepted "
                       "(they cannot be told another value): TCP keepalive probes reap dead "
                       "peers, but a live peer that stays silent holds its connection without a "
                       "deadline (slow-connection resource holding, CVE-2020-13849 class)",
                       "set limits.v3_keepalive: refuse if every device keeps a keepalive within "
                       "max_keepalive; bound connections with max_connections(_per_ip)"});
    }
    if (l.maxPacketSize > kMaxPacketSize) {
        out.push_back({Severity::Medium, "loose-limit", "limits.max_packet_size",
                       "max_packet_size is " + std::to_string(l.maxPacketSize) +
                           " bytes (over 16 MiB): a few clients can exhaust memory",
                       "set limits.max_packet_size to what devices need (default 256KiB)"});
    }
}

}  // namespace

void auditSettings(const config::Config& config, Findings& out) {
    if (config.auth.anonymous) {
        out.push_back({Severity::High, "anonymous-access", "auth",
                       "anonymous: true accepts clients that present no certificate and no "
                       "password (identity \"anonymous\")",
                       "set auth.anonymous: false"});
    }

    auditLimits(config.limits, out);

    if (config.bans.authFailures == 0) {
        out.push_back({Severity::Medium, "missing-limit", "bans.auth_failures",
                       "auth_failures is 0: failed logins never ban, passwords can be guessed "
                       "without end",
                       "set bans.auth_failures, e.g. 5"});
    }

    if (!config.policy.checkDeliveries) {
        out.push_back({Severity::Medium, "check-deliveries-off", "policy.check_deliveries",
                       "broker-to-client messages are not checked against subscribe rights: a "
                       "broker-side subscription or bridge can deliver topics a client may not "
                       "read",
                       "set policy.check_deliveries: true"});
    }

    if (config.metrics.enabled && !isLoopbackHost(config.metrics.bind.host)) {
        out.push_back({Severity::Low, "metrics-exposed", "metrics",
                       "metrics are served on " + describeHostPort(config.metrics.bind) +
                           " without authentication: listener names, connection counts and "
                           "denial rates are visible to the network",
                       "bind metrics to 127.0.0.1 and scrape through a sidecar or firewall it"});
    }

    if (!isLoopbackHost(config.backend.address.host)) {
        out.push_back({Severity::Low, "remote-backend", "backend",
                       "the broker at " + describeHostPort(config.backend.address) +
                           " is not on loopback: plaintext MQTT (credentials and messages) "
                           "leaves this host",
                       "run the broker on the same host or pod (127.0.0.1) or on an isolated "
                       "network"});
    }

    // passthrough hands the broker the CONNECT username; the gateway refuses one the password
    // factor did not prove unless it equals the identity, but with certificate-only auth the
    // broker's own rules then key on a name the gateway never checked a secret for.
    if (config.backend.credentials == config::BackendCredentials::Passthrough) {
        const bool passwordFactor = config.auth.hasMethod(config::AuthMethod::Password);
        out.push_back(
            {passwordFactor ? Severity::Low : Severity::Medium, "backend-credentials-passthrough",
             "backend",
             passwordFactor
                 ? "backend.credentials: passthrough forwards the device's own username and "
                   "password to the broker: the broker's ACLs, not the identity Moat "
                   "authenticated, decide what the device may do"
                 : "backend.credentials: passthrough with certificate-only authentication: "
                   "the broker sees the CONNECT username, which no password proves; Moat "
                   "refuses a username that differs from the certificate identity, but the "
                   "broker's ACLs still key on a name the device chose",
             "set backend.credentials: identity (the broker sees the authenticated identity)"});
    }

    // Whoever can write to the cluster channel can ban devices and kick identities.
    if (config.cluster.redis && config.cluster.password.empty() &&
        !isLoopbackHost(config.cluster.redis->host)) {
        out.push_back({Severity::Medium, "cluster-unauthenticated", "cluster",
                       "Redis at " + describeHostPort(*config.cluster.redis) +
                           " is used without a password: any client that reaches it can ban "
                           "devices and disconnect identities on every replica",
                       "set a Redis password (requirepass or an ACL user) and "
                       "cluster.password_file, and restrict who can reach Redis"});
    }
    auditClusterTrust(config, out);
}

// What replicas accept from each other (gateway/cluster/ClusterAuth.h).
void auditClusterTrust(const config::Config& config, Findings& out) {
    if (!config.cluster.redis) return;
    if (config.cluster.key.empty()) {
        out.push_back({Severity::High, "cluster-unsigned", "cluster",
                       "cluster events and shared bans are not signed: anything that can reach "
                       "Redis at " +
                           describeHostPort(*config.cluster.redis) +
                           " can ban devices (up to bans.max_duration), disconnect identities "
                           "and claim connections from any address on every replica",
                       "give every replica the same secret in cluster.key_file (openssl rand "
                       "-hex 32 > cluster.key); replicas then drop unsigned events and records"});
    }
    // The Redis client library (hiredis 0.14, Debian 12) has no TLS support.
    if (!isLoopbackHost(config.cluster.redis->host)) {
        out.push_back({Severity::Medium, "cluster-redis-plaintext", "cluster",
                       "the connection to Redis at " + describeHostPort(*config.cluster.redis) +
                           " is plaintext (this build's Redis client, hiredis 0.14, has no TLS): "
                           "the Redis password, bans and client identities cross the network "
                           "in clear",
                       "keep Redis on an isolated network, or reach it through a local TLS "
                       "tunnel (stunnel, a service-mesh sidecar) on 127.0.0.1"});
    }
}

}  // namespace moat::audit::detail
