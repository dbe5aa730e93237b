#pragma once
// The configuration snapshot: what the YAML file says, validated, immutable once loaded.
// Every worker holds a std::shared_ptr<const Config>; a reload builds a new one.
// Field defaults are the contract defaults (CONTRACT.md §2).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/PolicySpec.h"

namespace moat::config {

using Millis = std::chrono::milliseconds;

// A token-bucket rate: `100/s`, `6000/m`, `1MiB/s`. perSecond == 0 means unlimited.
struct Rate {
    double perSecond = 0;
    bool unlimited() const { return perSecond <= 0; }
};

struct HostPort {
    std::string host;              // "0.0.0.0", "::", "127.0.0.1" (IPv6 without brackets)
    uint16_t port = 0;             // 0 = any free port (the bound port is logged)
    std::string toString() const;  // "host:port" / "[v6]:port"
};

struct TlsConfig {
    std::string cert;  // absolute path (relative paths resolved against the config folder)
    std::string key;
    std::string clientCa;  // empty: no client CA (then require_client_cert must be false)
    std::string crl;       // empty: no CRL
    bool requireClientCert = true;
    std::string minVersion = "1.2";  // "1.2" | "1.3"
    std::string ciphers;             // empty: OpenSSL default (TLS 1.2 and below)
    std::string ciphersuites;        // empty: OpenSSL default (TLS 1.3)
    // Key exchange groups, OpenSSL list syntax, names validated and spelled canonically by the
    // loader. No FFDHE by default: a client offering only ffdhe8192 would cost ~100 ms of CPU.
    std::string groups = "X25519:P-256:P-384";
    // Remember client-certificate chains that verified (gateway/tls/VerifiedChainCache.h) so
    // a reconnecting device skips chain verification; false: verify every handshake in full.
    bool verifyCache = true;
    // Issue TLS session tickets (one per TLS 1.3 handshake) so devices can resume; false: no
    // tickets (every connection a full handshake, each about a quarter cheaper for the gateway:
    // for fleets whose TLS stacks never resume).
    bool sessionTickets = true;
};

enum class ProxyProtocol { Off, V1, V2, Any };

// `websocket:` on a listener: it speaks MQTT over WebSocket (RFC 6455) instead of raw MQTT.
struct WebSocketConfig {
    std::string path = "/mqtt";  // the only request path that upgrades
    // Origins allowed to open a socket (browsers send Origin); nullopt = any. Stored in
    // lowercase, as "scheme://host[:port]".
    std::optional<std::vector<std::string>> allowedOrigins;
    bool forwardedFor = false;  // X-Forwarded-For from trusted_proxies names the client
    int line = 0;
};

struct ListenerConfig {
    std::string name;
    HostPort bind;
    std::optional<TlsConfig> tls;  // nullopt: plaintext listener
    int workers = 0;               // 0 = auto (one per core)
    ProxyProtocol proxyProtocol = ProxyProtocol::Off;
    std::vector<std::string> trustedProxies;   // CIDRs
    std::optional<WebSocketConfig> websocket;  // nullopt: raw MQTT
    int line = 0;  // line of this listener in the config file (for messages)
};

enum class BackendCredentials { Identity, Passthrough, Strip };

struct BackendConfig {
    HostPort address;
    Millis connectTimeout{5000};
    BackendCredentials credentials = BackendCredentials::Identity;
    ProxyProtocol proxyProtocol = ProxyProtocol::Off;  // only Off or V2 are valid
    // TCP connect probe of the broker for /healthz and moat_backend_up (HAProxy's
    // `check inter`); 0 = no probe, reachability then follows client connection attempts.
    Millis healthCheckInterval{5000};
};

enum class AuthMethod { Certificate, Password, Token };
enum class AuthRequire { Any, All };
enum class IdentityFrom { CertCn, CertSanDns, CertSanUri, CertSanEmail };
enum class ClientIdRule { Any, Identity, IdentityPrefix };

// auth.token (issue #24): JWT verification. Paths are absolute (resolved by the loader);
// algorithm names are checked by the loader against gateway/token's list.
struct TokenAuthConfig {
    int line = 0;                          // the `token:` key, for messages
    std::vector<std::string> keys;         // PEM public keys / certificates
    std::vector<std::string> hmacSecrets;  // HMAC secret files
    std::string jwksFile;                  // empty: none
    std::string jwksUrl;                   // empty: none; https only
    std::string jwksCa;                    // CA bundle for jwks_url; empty: system store
    Millis jwksRefresh{600000};
    std::vector<std::string> algorithms;  // empty: every algorithm a configured key can use
    std::optional<std::string> issuer;
    std::optional<std::string> audience;
    std::string identityClaim = "sub";
    std::optional<std::string> rolesClaim;
    Millis leeway{30000};
    std::optional<Millis> maxLifetime;
    std::string identityPrefix;
};

struct AuthConfig {
    std::vector<AuthMethod> methods{AuthMethod::Certificate, AuthMethod::Password};
    AuthRequire require = AuthRequire::Any;
    std::string passwordFile;  // empty: no password factor
    IdentityFrom identityFrom = IdentityFrom::CertCn;
    bool usernameMustMatchCert = true;
    ClientIdRule clientId = ClientIdRule::Any;
    // A client id belongs to the identity holding it, while connected and after it leaves for
    // min(its session's expiry, session_owner_ttl) (CONTRACT §3, inspect/OwnershipTable.h).
    bool protectClientIds = true;
    Millis sessionOwnerTtl{7LL * 24 * 3600 * 1000};
    bool anonymous = false;
    std::optional<TokenAuthConfig> token;  // set when `auth.token` is present
    bool hasMethod(AuthMethod m) const {
        for (auto x : methods)
            if (x == m) return true;
        return false;
    }
};

enum class OnExceed { Throttle, Disconnect };
// What an MQTT 3.x keepalive of 0 or above max_keepalive gets (a v3 client cannot be told
// another value): accept = forwarded unchanged, dead peers reaped by TCP keepalive probes;
// refuse = CONNACK 0x02, as Mosquitto with max_keepalive does.
enum class V3Keepalive { Accept, Refuse };

struct LimitsConfig {
    uint32_t maxConnections = 10000;
    uint32_t maxConnectionsPerIp = 100;
    Rate connectionRatePerIp{20};
    Millis handshakeTimeout{10000};
    uint32_t maxPacketSize = 256 * 1024;
    uint32_t maxSubscriptions = 100;
    Rate publishRate{100};
    Rate publishBytesRate{1024 * 1024};
    Millis maxKeepalive{300000};
    OnExceed onExceed = OnExceed::Throttle;
    Millis drainTimeout{10000};
    // Extensions beyond the contract (defaults are generous):
    uint32_t maxInflight = 1000;      // un-acknowledged QoS 1/2 publishes per client
    uint32_t maxUserProperties = 64;  // per packet
    V3Keepalive v3Keepalive = V3Keepalive::Accept;
    Rate controlPacketRate{50};  // PINGREQ/SUBSCRIBE/UNSUBSCRIBE per client
};

struct BansConfig {
    uint32_t authFailures = 5;
    Millis window{60000};
    Millis duration{300000};
    Millis maxDuration{3600000};
};

enum class IntegrityAlgorithm { HmacSha256, Ed25519 };
enum class OnInvalid { Drop, Disconnect };

struct IntegrityRule {
    std::vector<std::string> topics;
    IntegrityAlgorithm algorithm = IntegrityAlgorithm::HmacSha256;
    std::string key;  // path, may contain %u
    std::optional<Millis> maxAge;
    OnInvalid onInvalid = OnInvalid::Drop;
    int line = 0;
};

struct IntegrityConfig {
    std::vector<IntegrityRule> rules;
    bool stampIdentity = false;
};

struct ClusterConfig {
    std::optional<HostPort> redis;  // nullopt: no cluster
    std::string keyPrefix = "moat:";
    // Redis AUTH: `password` is read from `passwordFile` at load time (a secret never sits in
    // the YAML itself); empty = no AUTH. `username` selects a Redis 6 ACL user.
    std::string username;
    std::string passwordFile;
    std::string password;
    // The fleet's shared secret (read from `keyFile` at start): every event on the channel and
    // every ban / connection record in Redis carries an HMAC-SHA256 under it, and replicas
    // drop what does not verify. Empty: unsigned state is accepted (audited as high).
    std::string keyFile;
    std::string key;
};

inline constexpr size_t kMinClusterKeyBytes = 32;

struct MetricsConfig {
    HostPort bind{"127.0.0.1", 9464};
    std::string path = "/metrics";
    bool enabled = true;
};

struct AuditConfig {
    std::string log = "-";  // "-" = stderr, else a file path
    uint32_t maxEventsPerSecond = 1000;
};

// Anomaly detection thresholds (extension; CONTRACT.md §5 names the kinds).
struct AnomalyConfig {
    uint32_t authFailures = 5;        // failed logins per IP / identity within window
    uint32_t topicScanDistinct = 20;  // distinct denied topics per client within window
    uint32_t connectionStorm = 100;   // connections from one IP within window
    double publishSpikeFactor = 10;   // publish rate this many times above own baseline
    Millis window{60000};
};

// How the gateway's event loops run on the host (extension).
struct TuningConfig {
    // normal: the Linux default (SCHED_OTHER). batch: SCHED_BATCH for the worker threads — a
    // woken worker no longer preempts the task on its core (typically the broker, mid-way
    // through writing a batch of packets), so each wake-up finds more work. More throughput
    // when gateway and broker share cores; more latency when CPU-bound work shares them.
    enum class Scheduler { Normal, Batch };
    Scheduler scheduler = Scheduler::Normal;
};

struct Config {
    std::string path;  // the config file, absolute
    std::vector<ListenerConfig> listeners;
    BackendConfig backend;
    AuthConfig auth;
    policy::PolicySpec policy;
    LimitsConfig limits;
    BansConfig bans;
    IntegrityConfig integrity;
    ClusterConfig cluster;
    MetricsConfig metrics;
    AuditConfig audit;
    AnomalyConfig anomaly;
    TuningConfig tuning;
};

struct ConfigError {
    std::string file;
    int line = 0;  // 1-based; 0 when unknown
    std::string message;
    std::string toString() const;  // "file:line: message"
};

struct LoadResult {
    std::shared_ptr<const Config> config;  // null when errors is not empty
    std::vector<ConfigError> errors;
};

// Parses and validates the file, and checks that every file it names exists and is readable
// (certificates, keys and CRLs are parsed by gateway/tls when the TLS contexts are built).
LoadResult loadConfigFile(const std::string& path);
// Same, from a string (tests, fuzzing). `path` is used in messages and to resolve relative paths.
LoadResult loadConfigString(const std::string& yaml, const std::string& path);

// Parsers for the scalar formats, exposed for unit tests. Return nullopt on a bad value.
std::optional<Millis> parseDuration(const std::string& s);  // "500ms" "10s" "5m" "1h" "1d"
std::optional<uint64_t> parseSize(const std::string& s);    // "512" "64KiB" "1MiB" "1GiB" "10KB"
std::optional<Rate> parseRate(const std::string& s);        // "100/s" "6000/m" "1MiB/s" "unlimited"
std::optional<HostPort> parseHostPort(const std::string& s);  // "0.0.0.0:8883" "[::]:8883"

}  // namespace moat::config
