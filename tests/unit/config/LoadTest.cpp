// Whole configurations that load: the contract's example, defaults, the shipped example.

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "TestFiles.h"

using namespace moat::config;
using moat::config::test::minimal;
using moat::config::test::TempDir;
using moat::config::test::yaml;
using std::chrono::milliseconds;

namespace {

// CONTRACT.md §2, verbatim.
const char* kContractExample = R"(
listeners:
  - name: mqtts                      # label used in logs and metrics
    bind: 0.0.0.0:8883               # host:port; [::]:8883 for IPv6
    tls:                             # omit tls: for a plaintext listener (audit flags it)
      cert: certs/server.pem         # chain, leaf first
      key: certs/server.key
      client_ca: certs/ca.pem        # CA bundle that signs device certificates
      require_client_cert: true      # mTLS; false = a cert is optional
      crl: certs/ca.crl              # optional; reloaded on SIGHUP
      min_version: "1.2"             # "1.2" | "1.3"
      ciphers: "ECDHE+AESGCM:ECDHE+CHACHA20"   # optional, TLS 1.2
      ciphersuites: "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
      groups: "X25519:P-256:P-384"   # key exchange groups (no FFDHE)
    workers: auto                    # event loops for this listener; auto = one per core
    proxy_protocol: "off"            # "off" | v1 | v2 | any: expect a PROXY header first …
    trusted_proxies: [10.0.0.0/8]    # … and accept it only from these source CIDRs

backend:
  address: 127.0.0.1:1883            # the broker, plaintext MQTT
  connect_timeout: 5s
  credentials: identity              # what the broker sees in CONNECT:
                                     #   identity    = username := authenticated identity, password removed
                                     #   passthrough = the client's own username/password
                                     #   strip       = no username, no password

auth:
  methods: [certificate, password]   # accepted factors
  require: any                       # any = one accepted factor is enough
                                     # all = every listed factor (cert AND password = MFA)
  password_file: passwd              # mosquitto_passwd format: user:$7$… (PBKDF2-SHA512) or $6$…
  identity_from: cert_cn             # cert_cn | cert_san_dns | cert_san_uri | cert_san_email
  username_must_match_cert: true     # with both factors: CONNECT username == cert identity
  client_id: any                     # any | identity | identity_prefix  (client id must equal /
                                     #   start with "<identity>" to be accepted)
  anonymous: false                   # true: no factor needed; identity "anonymous"

policy:
  default_roles: [device]            # roles of an authenticated identity with no users: entry
  roles:
    device:
      publish:   ["devices/%u/telemetry/#", "devices/%u/status"]
      subscribe: ["devices/%u/commands/#"]
    operator:
      publish:   ["devices/+/commands/#"]
      subscribe: ["devices/#", "$SYS/broker/clients/#"]
      deny_publish: ["devices/+/commands/firmware/#"]   # deny beats allow
  users:
    ops-console: [operator]
  on_publish_denied: drop            # drop | disconnect   (see §3)
  check_deliveries: true             # also check broker→client PUBLISH against subscribe rights

limits:
  max_connections: 10000
  max_connections_per_ip: 100
  connection_rate_per_ip: 20/s       # new TCP connections per source IP (burst = 1 s worth)
  handshake_timeout: 10s             # TCP accept → CONNECT fully received and checked
  max_packet_size: 256KiB            # judged from the fixed header, before buffering the body
  max_subscriptions: 100             # per client
  publish_rate: 100/s                # per client, token bucket (burst = 1 s worth)
  publish_bytes_rate: 1MiB/s         # per client
  max_keepalive: 300s                # keepalive 0 or above is clamped (v5: Server Keep Alive)
  on_exceed: throttle                # throttle (stop reading until tokens return) | disconnect
  drain_timeout: 10s

bans:
  auth_failures: 5                   # failed authentications …
  window: 60s                        # … within this window …
  duration: 5m                       # … ban the source IP (and the identity) for this long;
  max_duration: 1h                   #     each repeat doubles it up to max_duration

integrity:                           # message integrity beyond TLS (optional)
  rules:
    - topics: ["devices/+/firmware/#"] # PUBLISH topics that must carry a valid signature
      algorithm: hmac-sha256           # hmac-sha256 | ed25519
      key: keys/%u.key                 # per-identity key: HMAC secret, or Ed25519 public key PEM
      max_age: 5m                      # optional: reject signatures older than this (replay)
      on_invalid: drop                 # drop | disconnect
  stamp_identity: true               # v5: forwarded PUBLISH gets user property
                                     #   moat-identity=<identity>; client-supplied copies removed

cluster:                             # optional: replicas share state through Redis
  redis: 127.0.0.1:6379              #   bans, auth-failure counts, per-IP counts, kicks
  key_prefix: "moat:"

metrics:
  bind: 127.0.0.1:9464
  path: /metrics

audit:
  log: "-"                           # "-" = stderr, or a file path (reopened on SIGHUP)
  max_events_per_second: 1000        # beyond this, events are counted and summarised
)";

std::string errorText(const LoadResult& r) {
    std::string out;
    for (const auto& e : r.errors) out += e.toString() + "\n";
    return out;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("the contract's example loads with every value as written") {
    TempDir dir;
    dir.writeContractFiles();
    LoadResult r = dir.load(yaml(kContractExample));
    INFO(errorText(r));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    const Config& c = *r.config;
    CHECK(c.path == dir / "moat.yaml");

    REQUIRE(c.listeners.size() == 1);
    const ListenerConfig& l = c.listeners[0];
    CHECK(l.name == "mqtts");
    CHECK(l.line == 2);
    CHECK(l.bind.host == "0.0.0.0");
    CHECK(l.bind.port == 8883);
    REQUIRE(l.tls);
    CHECK(l.tls->cert == dir / "certs/server.pem");
    CHECK(l.tls->key == dir / "certs/server.key");
    CHECK(l.tls->clientCa == dir / "certs/ca.pem");
    CHECK(l.tls->crl == dir / "certs/ca.crl");
    CHECK(l.tls->requireClientCert);
    CHECK(l.tls->verifyCache);     // on by default
    CHECK(l.tls->sessionTickets);  // on by default
    CHECK(l.tls->minVersion == "1.2");
    CHECK(l.tls->ciphers == "ECDHE+AESGCM:ECDHE+CHACHA20");
    CHECK(l.tls->ciphersuites ==
          "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    CHECK(l.tls->groups == "X25519:P-256:P-384");
    CHECK(l.workers == 0);
    CHECK(l.proxyProtocol == ProxyProtocol::Off);
    CHECK(l.trustedProxies == std::vector<std::string>{"10.0.0.0/8"});

    CHECK(c.backend.address.toString() == "127.0.0.1:1883");
    CHECK(c.backend.connectTimeout == milliseconds(5000));
    CHECK(c.backend.credentials == BackendCredentials::Identity);
    CHECK(c.backend.proxyProtocol == ProxyProtocol::Off);

    CHECK(c.auth.methods == std::vector<AuthMethod>{AuthMethod::Certificate, AuthMethod::Password});
    CHECK(c.auth.require == AuthRequire::Any);
    CHECK(c.auth.passwordFile == dir / "passwd");
    CHECK(c.auth.identityFrom == IdentityFrom::CertCn);
    CHECK(c.auth.usernameMustMatchCert);
    CHECK(c.auth.clientId == ClientIdRule::Any);
    CHECK_FALSE(c.auth.anonymous);

    const auto& p = c.policy;
    CHECK(p.defaultRoles == std::vector<std::string>{"device"});
    REQUIRE(p.roles.size() == 2);
    CHECK(p.roles[0].name == "device");
    CHECK(p.roles[0].publish ==
          std::vector<std::string>{"devices/%u/telemetry/#", "devices/%u/status"});
    CHECK(p.roles[0].subscribe == std::vector<std::string>{"devices/%u/commands/#"});
    CHECK(p.roles[0].denyPublish.empty());
    CHECK(p.roles[1].name == "operator");
    CHECK(p.roles[1].publish == std::vector<std::string>{"devices/+/commands/#"});
    CHECK(p.roles[1].subscribe == std::vector<std::string>{"devices/#", "$SYS/broker/clients/#"});
    CHECK(p.roles[1].denyPublish == std::vector<std::string>{"devices/+/commands/firmware/#"});
    CHECK(p.users.size() == 1);
    CHECK(p.users.at("ops-console") == std::vector<std::string>{"operator"});
    CHECK(p.onPublishDenied == moat::policy::OnPublishDenied::Drop);
    CHECK(p.checkDeliveries);

    const auto& lim = c.limits;
    CHECK(lim.maxConnections == 10000);
    CHECK(lim.maxConnectionsPerIp == 100);
    CHECK(lim.connectionRatePerIp.perSecond == Approx(20));
    CHECK(lim.handshakeTimeout == milliseconds(10000));
    CHECK(lim.maxPacketSize == 256 * 1024);
    CHECK(lim.maxSubscriptions == 100);
    CHECK(lim.publishRate.perSecond == Approx(100));
    CHECK(lim.publishBytesRate.perSecond == Approx(1024 * 1024));
    CHECK(lim.maxKeepalive == milliseconds(300000));
    CHECK(lim.onExceed == OnExceed::Throttle);
    CHECK(lim.drainTimeout == milliseconds(10000));

    CHECK(c.bans.authFailures == 5);
    CHECK(c.bans.window == milliseconds(60000));
    CHECK(c.bans.duration == milliseconds(300000));
    CHECK(c.bans.maxDuration == milliseconds(3600000));

    REQUIRE(c.integrity.rules.size() == 1);
    const IntegrityRule& rule = c.integrity.rules[0];
    CHECK(rule.topics == std::vector<std::string>{"devices/+/firmware/#"});
    CHECK(rule.algorithm == IntegrityAlgorithm::HmacSha256);
    CHECK(rule.key == dir / "keys/%u.key");
    CHECK(rule.maxAge == milliseconds(300000));
    CHECK(rule.onInvalid == OnInvalid::Drop);
    CHECK(rule.line == 73);
    CHECK(c.integrity.stampIdentity);

    REQUIRE(c.cluster.redis);
    CHECK(c.cluster.redis->toString() == "127.0.0.1:6379");
    CHECK(c.cluster.keyPrefix == "moat:");
    CHECK(c.metrics.bind.toString() == "127.0.0.1:9464");
    CHECK(c.metrics.path == "/metrics");
    CHECK(c.metrics.enabled);
    CHECK(c.audit.log == "-");
    CHECK(c.audit.maxEventsPerSecond == 1000);
}

TEST_CASE("omitted sections and keys take the contract defaults") {
    TempDir dir;
    LoadResult r = dir.load(minimal());
    INFO(errorText(r));
    REQUIRE(r.config);
    const Config& c = *r.config;
    const Config d;  // the struct defaults are the contract's
    REQUIRE(c.listeners.size() == 1);
    CHECK_FALSE(c.listeners[0].tls);
    CHECK(c.listeners[0].workers == 0);
    CHECK(c.listeners[0].proxyProtocol == ProxyProtocol::Off);
    CHECK(c.backend.connectTimeout == milliseconds(5000));
    CHECK(c.backend.credentials == BackendCredentials::Identity);
    CHECK(c.auth.methods == d.auth.methods);
    CHECK(c.auth.require == AuthRequire::Any);
    CHECK(c.auth.passwordFile.empty());
    CHECK(c.auth.usernameMustMatchCert);
    CHECK_FALSE(c.auth.anonymous);
    CHECK(c.policy.defaultRoles.empty());
    CHECK(c.policy.users.empty());
    CHECK(c.policy.onPublishDenied == moat::policy::OnPublishDenied::Drop);
    CHECK(c.policy.checkDeliveries);
    CHECK(c.limits.maxConnections == 10000);
    CHECK(c.limits.maxConnectionsPerIp == 100);
    CHECK(c.limits.connectionRatePerIp.perSecond == Approx(20));
    CHECK(c.limits.handshakeTimeout == milliseconds(10000));
    CHECK(c.limits.maxPacketSize == 256 * 1024);
    CHECK(c.limits.maxSubscriptions == 100);
    CHECK(c.limits.publishRate.perSecond == Approx(100));
    CHECK(c.limits.publishBytesRate.perSecond == Approx(1024 * 1024));
    CHECK(c.limits.maxKeepalive == milliseconds(300000));
    CHECK(c.limits.onExceed == OnExceed::Throttle);
    CHECK(c.limits.v3Keepalive == V3Keepalive::Accept);
    CHECK(c.limits.drainTimeout == milliseconds(10000));
    CHECK(c.bans.authFailures == 5);
    CHECK(c.bans.window == milliseconds(60000));
    CHECK(c.bans.duration == milliseconds(300000));
    CHECK(c.bans.maxDuration == milliseconds(3600000));
    CHECK(c.integrity.rules.empty());
    CHECK_FALSE(c.integrity.stampIdentity);
    CHECK_FALSE(c.cluster.redis);
    CHECK(c.cluster.keyPrefix == "moat:");
    CHECK(c.metrics.bind.toString() == "127.0.0.1:9464");
    CHECK(c.metrics.path == "/metrics");
    CHECK(c.audit.log == "-");
    CHECK(c.audit.maxEventsPerSecond == 1000);
    CHECK(c.anomaly.authFailures == d.anomaly.authFailures);
    CHECK(c.anomaly.window == d.anomaly.window);
    CHECK(c.tuning.scheduler == moat::config::TuningConfig::Scheduler::Normal);
}

TEST_CASE("tuning.scheduler: normal or batch") {
    TempDir dir;
    LoadResult r = dir.load(minimal("tuning:\n  scheduler: batch\n"));
    INFO(errorText(r));
    REQUIRE(r.config);
    CHECK(r.config->tuning.scheduler == moat::config::TuningConfig::Scheduler::Batch);
}

TEST_CASE("sections left empty keep their defaults") {
    TempDir dir;
    LoadResult r = dir.load(minimal("auth:\nlimits:\nbans:\nmetrics:\naudit:\nanomaly:\n"));
    INFO(errorText(r));
    REQUIRE(r.config);
    CHECK(r.config->limits.maxConnections == 10000);
}

TEST_CASE("the shipped example config loads") {
    // deploy/examples/moat.yaml, next to stand-ins for the files it names.
    TempDir dir;
    dir.writeContractFiles();
    dir.write("keys/firmware-signer.pub");
    dir.write("cluster.key", std::string(64, 'e') + "\n");
    std::string text = readFile(std::string(MOAT_SOURCE_DIR) + "/deploy/examples/moat.yaml");
    REQUIRE_FALSE(text.empty());
    LoadResult r = dir.load(text);
    INFO(errorText(r));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    CHECK(r.config->listeners.size() >= 1);
}

TEST_CASE("loadConfigFile resolves relative paths against the config's folder") {
    TempDir dir;
    dir.writeContractFiles();
    std::string file = dir.write("etc/moat.yaml", yaml(kContractExample));
    // The files sit next to the config, not in the working directory.
    dir.write("etc/certs/server.pem");
    dir.write("etc/certs/server.key");
    dir.write("etc/certs/ca.pem");
    dir.write("etc/certs/ca.crl");
    dir.write("etc/passwd");
    dir.mkdir("etc/keys");
    LoadResult r = loadConfigFile(file);
    INFO(errorText(r));
    REQUIRE(r.config);
    CHECK(r.config->path == file);
    CHECK(r.config->listeners[0].tls->cert == dir / "etc/certs/server.pem");
    CHECK(r.config->auth.passwordFile == dir / "etc/passwd");
    CHECK(r.config->integrity.rules[0].key == dir / "etc/keys/%u.key");
}

TEST_CASE("absolute paths are kept; '..' is normalised") {
    TempDir dir;
    std::string ca = dir.write("pki/ca.pem");
    dir.write("pki/server.pem");
    dir.write("pki/server.key");
    dir.write("conf/placeholder");
    LoadResult r = loadConfigString(yaml(R"(
listeners:
  - bind: "[::]:8883"
    tls:
      cert: ../pki/server.pem
      key: ../pki/./server.key
      client_ca: )") + ca + R"(
backend: {address: "localhost:1883"}
policy: {}
)",
                                    dir / "conf/moat.yaml");
    INFO(errorText(r));
    REQUIRE(r.config);
    const auto& l = r.config->listeners[0];
    CHECK(l.name == "listener-0");
    CHECK(l.bind.toString() == "[::]:8883");
    CHECK(l.tls->cert == dir / "pki/server.pem");
    CHECK(l.tls->key == dir / "pki/server.key");
    CHECK(l.tls->clientCa == ca);
    CHECK(r.config->backend.address.host == "localhost");
}

TEST_CASE("every optional value and extension key") {
    TempDir dir;
    dir.writeContractFiles();
    dir.write("keys/signer.pub");
    dir.write("redis.pass", "s3cret pass\n");
    dir.write("cluster.key", std::string(64, 'f') + "\n");
    dir.mkdir("logs");
    LoadResult r = dir.load(yaml(R"(
listeners:
  - name: edge
    bind: 0.0.0.0:8883
    tls:
      cert: certs/server.pem
      key: certs/server.key
      require_client_cert: false
      min_version: "1.3"
      verify_cache: false
      session_tickets: false
    workers: 4
    proxy_protocol: off
    trusted_proxies: [10.0.0.0/8]
  - name: lb
    bind: "[::]:8884"
    proxy_protocol: v2
    trusted_proxies: ["fd00::/8", 192.168.1.10]
  - name: lb1
    bind: 127.0.0.1:8885
    proxy_protocol: any
    trusted_proxies: [127.0.0.1]
backend:
  address: broker.internal:1883
  connect_timeout: 1500ms
  credentials: strip
  proxy_protocol: v2
auth:
  methods: [password]
  require: all
  password_file: passwd
  identity_from: cert_san_uri
  username_must_match_cert: false
  client_id: identity_prefix
  anonymous: no
policy:
  roles:
    admin:
      publish: ["#"]
      subscribe: ["#"]
      deny_subscribe: ["secret/#"]
    empty:
  default_roles: [admin, admin]
  users:
    bob: []
  on_publish_denied: disconnect
  check_deliveries: false
limits:
  max_connections: unlimited
  max_connections_per_ip: 1
  connection_rate_per_ip: unlimited
  handshake_timeout: 2s
  max_packet_size: 1MB
  max_subscriptions: 5
  publish_rate: 0
  publish_bytes_rate: 64KiB/s
  max_keepalive: 1m
  on_exceed: disconnect
  drain_timeout: 0s
  max_inflight: 20
  max_user_properties: 0
  control_packet_rate: 10/s
bans:
  auth_failures: 3
  window: 1m
  duration: 1m
  max_duration: 1d
integrity:
  rules:
    - topics: [fw/#]
      algorithm: ed25519
      key: keys/signer.pub
      on_invalid: disconnect
cluster:
  key_prefix: ""
  username: moat
  password_file: redis.pass
  key_file: cluster.key
metrics:
  bind: "[::1]:0"
  path: /prom
  enabled: false
audit:
  log: logs/audit.jsonl
  max_events_per_second: 5
anomaly:
  auth_failures: 10
  topic_scan_distinct: 50
  connection_storm: 500
  publish_spike_factor: 2.5
  window: 30s
)"));
    INFO(errorText(r));
    REQUIRE(r.config);
    const Config& c = *r.config;
    REQUIRE(c.listeners.size() == 3);
    CHECK_FALSE(c.listeners[0].tls->requireClientCert);
    CHECK(c.listeners[0].tls->clientCa.empty());
    CHECK(c.listeners[0].tls->minVersion == "1.3");
    CHECK_FALSE(c.listeners[0].tls->verifyCache);
    CHECK_FALSE(c.listeners[0].tls->sessionTickets);
    CHECK(c.listeners[0].workers == 4);
    CHECK(c.listeners[0].proxyProtocol == ProxyProtocol::Off);  // bare off: YAML 1.1 false
    CHECK(c.listeners[1].proxyProtocol == ProxyProtocol::V2);
    CHECK(c.listeners[1].trustedProxies == std::vector<std::string>{"fd00::/8", "192.168.1.10/32"});
    CHECK(c.listeners[2].proxyProtocol == ProxyProtocol::Any);
    CHECK(c.backend.connectTimeout == milliseconds(1500));
    CHECK(c.backend.credentials == BackendCredentials::Strip);
    CHECK(c.backend.proxyProtocol == ProxyProtocol::V2);
    CHECK(c.auth.methods == std::vector<AuthMethod>{AuthMethod::Password});
    CHECK(c.auth.require == AuthRequire::All);
    CHECK(c.auth.identityFrom == IdentityFrom::CertSanUri);
    CHECK(c.auth.clientId == ClientIdRule::IdentityPrefix);
    CHECK_FALSE(c.auth.usernameMustMatchCert);
    REQUIRE(c.policy.roles.size() == 2);
    CHECK(c.policy.roles[0].denySubscribe == std::vector<std::string>{"secret/#"});
    CHECK(c.policy.roles[1].name == "empty");
    CHECK(c.policy.defaultRoles == std::vector<std::string>{"admin"});
    CHECK(c.policy.users.at("bob").empty());
    CHECK(c.policy.onPublishDenied == moat::policy::OnPublishDenied::Disconnect);
    CHECK_FALSE(c.policy.checkDeliveries);
    CHECK(c.limits.maxConnections == UINT32_MAX);
    CHECK(c.limits.connectionRatePerIp.unlimited());
    CHECK(c.limits.maxPacketSize == 1000000);
    CHECK(c.limits.publishRate.unlimited());
    CHECK(c.limits.publishBytesRate.perSecond == Approx(65536));
    CHECK(c.limits.maxKeepalive == milliseconds(60000));
    CHECK(c.limits.onExceed == OnExceed::Disconnect);
    CHECK(c.limits.drainTimeout == milliseconds(0));
    CHECK(c.limits.maxInflight == 20);
    CHECK(c.limits.maxUserProperties == 0);
    CHECK(c.limits.controlPacketRate.perSecond == Approx(10));
    CHECK(c.bans.maxDuration == milliseconds(86400000));
    CHECK(c.integrity.rules[0].algorithm == IntegrityAlgorithm::Ed25519);
    CHECK(c.integrity.rules[0].key == dir / "keys/signer.pub");
    CHECK_FALSE(c.integrity.rules[0].maxAge);
    CHECK(c.integrity.rules[0].onInvalid == OnInvalid::Disconnect);
    CHECK(c.cluster.keyPrefix.empty());
    CHECK(c.cluster.username == "moat");
    CHECK(c.cluster.passwordFile == dir / "redis.pass");
    CHECK(c.cluster.password == "s3cret pass");  // one trailing newline dropped, nothing else
    CHECK(c.cluster.keyFile == dir / "cluster.key");
    CHECK(c.cluster.key == std::string(64, 'f'));
    CHECK(c.metrics.bind.toString() == "[::1]:0");
    CHECK(c.metrics.path == "/prom");
    CHECK_FALSE(c.metrics.enabled);
    CHECK(c.audit.log == dir / "logs/audit.jsonl");
    CHECK(c.audit.maxEventsPerSecond == 5);
    CHECK(c.anomaly.authFailures == 10);
    CHECK(c.anomaly.topicScanDistinct == 50);
    CHECK(c.anomaly.connectionStorm == 500);
    CHECK(c.anomaly.publishSpikeFactor == Approx(2.5));
    CHECK(c.anomaly.window == milliseconds(30000));
}

TEST_CASE("YAML anchors and flow style are plain YAML and accepted") {
    TempDir dir;
    LoadResult r = dir.load(yaml(R"(
listeners: [{name: a, bind: "127.0.0.1:1884"}]
backend: {address: "127.0.0.1:1883"}
policy:
  roles:
    reader: {subscribe: &telemetry ["t/#", "s/+"]}
    writer: {publish: *telemetry}
)"));
    INFO(errorText(r));
    REQUIRE(r.config);
    CHECK(r.config->policy.roles[1].publish == std::vector<std::string>{"t/#", "s/+"});
}

TEST_CASE("websocket: a listener block with its defaults and every key") {
    TempDir dir;
    dir.writeContractFiles();
    LoadResult r = dir.load(yaml(R"(
listeners:
  - name: ws
    bind: 127.0.0.1:8080
    websocket: {}
  - name: wss
    bind: 127.0.0.1:8443
    tls: {cert: certs/server.pem, key: certs/server.key, require_client_cert: false}
    trusted_proxies: [10.0.0.0/8]
    websocket:
      path: /ws/mqtt
      allowed_origins: ["https://Dashboard.example.com", "http://localhost:3000"]
      forwarded_for: true
  - name: mqtt
    bind: 127.0.0.1:1884
backend: {address: "127.0.0.1:1883"}
policy: {}
)"));
    INFO(errorText(r));
    REQUIRE(r.config);
    const auto& ls = r.config->listeners;
    REQUIRE(ls[0].websocket);
    CHECK(ls[0].websocket->path == "/mqtt");
    CHECK_FALSE(ls[0].websocket->allowedOrigins);
    CHECK_FALSE(ls[0].websocket->forwardedFor);
    CHECK(ls[0].websocket->line == 4);
    REQUIRE(ls[1].websocket);
    CHECK(ls[1].websocket->path == "/ws/mqtt");
    CHECK(*ls[1].websocket->allowedOrigins ==
          std::vector<std::string>{"https://dashboard.example.com", "http://localhost:3000"});
    CHECK(ls[1].websocket->forwardedFor);
    CHECK_FALSE(ls[2].websocket);
}

TEST_CASE("roles: retain and max_qos; auth: protect_client_ids and session_owner_ttl") {
    moat::config::test::TempDir dir;
    auto r = dir.load(moat::config::test::yaml(R"(
listeners:
  - name: plain
    bind: 127.0.0.1:1884
backend:
  address: 127.0.0.1:1883
auth:
  protect_client_ids: false
  session_owner_ttl: 12h
policy:
  roles:
    sensor:
      publish: ["s/#"]
      retain: ["s/+/status"]
      max_qos: 1
    quiet:
      publish: ["q/#"]
      retain: []
      max_qos: 0
    plain:
      publish: ["p/#"]
)"));
    REQUIRE(r.config);
    CHECK_FALSE(r.config->auth.protectClientIds);
    CHECK(r.config->auth.sessionOwnerTtl == std::chrono::hours(12));
    const auto& roles = r.config->policy.roles;
    REQUIRE(roles.size() == 3);
    CHECK(roles[0].hasRetain);
    CHECK(roles[0].retain == std::vector<std::string>{"s/+/status"});
    CHECK(roles[0].maxQos == 1);
    CHECK(roles[1].hasRetain);
    CHECK(roles[1].retain.empty());
    CHECK(roles[1].maxQos == 0);
    CHECK_FALSE(roles[2].hasRetain);  // absent: retain wherever it may publish
    CHECK(roles[2].maxQos == 2);
    // Defaults.
    auto d = dir.load(moat::config::test::minimal());
    REQUIRE(d.config);
    CHECK(d.config->auth.protectClientIds);
    CHECK(d.config->auth.sessionOwnerTtl == std::chrono::hours(24 * 7));
    // max_qos is 0, 1 or 2.
    auto bad = dir.errors(moat::config::test::minimal("      max_qos: 3\n"));
    REQUIRE(bad.size() == 1);
    CHECK(bad[0].rfind("10: ", 0) == 0);
}
