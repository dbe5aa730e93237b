// backend, auth, limits, bans, cluster, metrics, audit, anomaly, tuning.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "gateway/config/FileCheck.h"
#include "gateway/config/Parse.h"
#include "gateway/token/Algorithm.h"

namespace moat::config::detail {
namespace {

constexpr uint32_t kU32Max = UINT32_MAX;
// MQTT's largest packet: 1 byte header + 4 bytes remaining length + 268,435,455 bytes.
constexpr uint64_t kMqttMaxPacket = 268435460;
// Nothing smaller holds a CONNECT.
constexpr uint64_t kMinPacket = 16;
// MQTT keepalive is a 16-bit number of seconds.
constexpr Millis kMaxKeepalive{65535LL * 1000};

}  // namespace

void parseBackend(LoadContext& ctx, MapReader& m, BackendConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("address")) {
        if (readHostPort(d, *f, out.address, false)) ctx.backendAddressLine = f->line;
    } else {
        d.error(m.line(), "missing required key 'address' in backend");
    }
    if (auto f = m.take("connect_timeout")) readDuration(d, *f, out.connectTimeout, Millis{1});
    if (auto f = m.take("credentials")) {
        readEnum<BackendCredentials>(d, *f, out.credentials,
                                     {{"identity", BackendCredentials::Identity},
                                      {"passthrough", BackendCredentials::Passthrough},
                                      {"strip", BackendCredentials::Strip}});
    }
    if (auto f = m.take("proxy_protocol")) readProxyProtocol(d, *f, out.proxyProtocol, true);
    if (auto f = m.take("health_check_interval"))
        readDuration(d, *f, out.healthCheckInterval, Millis{0});
    m.finish();
}

void parseAuth(LoadContext& ctx, MapReader& m, AuthConfig& out) {
    Diagnostics& d = ctx.diag;
    std::optional<Field> methods = m.take("methods");
    bool methodsOk = true;
    if (methods) {
        auto items = openList(d, *methods);
        methodsOk = items.has_value();
        std::vector<AuthMethod> parsed;
        for (const auto& item : items ? *items : std::vector<Field>{}) {
            AuthMethod method{};
            if (!readEnum<AuthMethod>(d, item, method,
                                      {{"certificate", AuthMethod::Certificate},
                                       {"password", AuthMethod::Password},
                                       {"token", AuthMethod::Token}})) {
                methodsOk = false;
                continue;
            }
            if (std::find(parsed.begin(), parsed.end(), method) != parsed.end()) {
                d.error(item.line,
                        item.path + ": " + quoteValue(item.node.Scalar()) + " is listed twice");
                methodsOk = false;
                continue;
            }
            parsed.push_back(method);
        }
        if (methodsOk) out.methods = std::move(parsed);
    }
    std::optional<Field> require = m.take("require");
    bool requireOk =
        !require || readEnum<AuthRequire>(d, *require, out.require,
                                          {{"any", AuthRequire::Any}, {"all", AuthRequire::All}});
    std::optional<Field> passwordFile = m.take("password_file");
    if (passwordFile) readFilePath(ctx, *passwordFile, out.passwordFile);
    if (auto f = m.take("identity_from")) {
        readEnum<IdentityFrom>(d, *f, out.identityFrom,
                               {{"cert_cn", IdentityFrom::CertCn},
                                {"cert_san_dns", IdentityFrom::CertSanDns},
                                {"cert_san_uri", IdentityFrom::CertSanUri},
                                {"cert_san_email", IdentityFrom::CertSanEmail}});
    }
    if (auto f = m.take("username_must_match_cert")) readBool(d, *f, out.usernameMustMatchCert);
    if (auto f = m.take("client_id")) {
        readEnum<ClientIdRule>(d, *f, out.clientId,
                               {{"any", ClientIdRule::Any},
                                {"identity", ClientIdRule::Identity},
                                {"identity_prefix", ClientIdRule::IdentityPrefix}});
    }
    if (auto f = m.take("protect_client_ids")) readBool(d, *f, out.protectClientIds);
    if (auto f = m.take("session_owner_ttl")) readDuration(d, *f, out.sessionOwnerTtl, Millis{0});
    std::optional<Field> anonymous = m.take("anonymous");
    bool anonymousOk = !anonymous || readBool(d, *anonymous, out.anonymous);
    std::optional<Field> token = m.take("token");
    bool tokenOk = true;
    if (token) {
        if (auto tm = openMap(d, *token, false)) {
            TokenAuthConfig t;
            t.line = token->line;
            tokenOk = parseTokenAuth(ctx, *tm, t);
            out.token = std::move(t);
        } else {
            tokenOk = false;
        }
    }
    m.finish();

    if (methodsOk && out.hasMethod(AuthMethod::Token) && !token) {
        d.error(methods->line, "auth.methods: 'token' needs an auth.token section");
    }
    if (methodsOk && token && !out.hasMethod(AuthMethod::Token)) {
        d.error(token->line, "auth.token: set, but 'token' is not listed in auth.methods");
    }
    // One CONNECT password field cannot carry both a password and a token.
    if (methodsOk && requireOk && out.require == AuthRequire::All &&
        out.hasMethod(AuthMethod::Password) && out.hasMethod(AuthMethod::Token)) {
        d.error(require ? require->line : m.line(),
                "auth.require: 'all' cannot combine the password and token methods (both come in "
                "the one CONNECT password field)");
    }
    (void)tokenOk;

    if (methodsOk && anonymousOk && out.methods.empty() && !out.anonymous) {
        d.error(methods->line, "auth.methods: must not be empty unless auth.anonymous is true");
    }
    // With require: all, a password method without a password file could never succeed.
    // (A password_file that was given but is unreadable has been reported already.)
    if (methodsOk && requireOk && !passwordFile && out.require == AuthRequire::All &&
        out.hasMethod(AuthMethod::Password)) {
        int line = require ? require->line : m.line();
        d.error(line, "auth.require: 'all' with the password method needs auth.password_file");
    }
}

bool parseTokenAuth(LoadContext& ctx, MapReader& m, TokenAuthConfig& out) {
    Diagnostics& d = ctx.diag;
    const size_t before = d.count();
    auto readPaths = [&](const char* key, std::vector<std::string>& paths) {
        auto f = m.take(key);
        if (!f) return;
        auto items = openList(d, *f);
        for (const auto& item : items ? *items : std::vector<Field>{}) {
            std::string path;
            if (readFilePath(ctx, item, path)) paths.push_back(std::move(path));
        }
    };
    readPaths("keys", out.keys);
    readPaths("hmac_secrets", out.hmacSecrets);
    if (auto f = m.take("jwks_file")) readFilePath(ctx, *f, out.jwksFile);
    std::optional<Field> url = m.take("jwks_url");
    if (url && readString(d, *url, out.jwksUrl)) {
        if (out.jwksUrl.rfind("https://", 0) != 0 || out.jwksUrl.size() <= 8) {
            d.error(url->line, url->path +
                                   ": must be an https:// URL (keys fetched in the "
                                   "clear could be replaced on the way)");
            out.jwksUrl.clear();
        }
    }
    if (auto f = m.take("jwks_ca")) readFilePath(ctx, *f, out.jwksCa);
    if (auto f = m.take("jwks_refresh")) readDuration(d, *f, out.jwksRefresh, Millis{1000});
    if (auto f = m.take("algorithms")) {
        std::vector<std::string> names;
        if (readStringList(d, *f, names)) {
            for (const auto& n : names) {
                if (n == "none" || n == "None" || n == "NONE") {
                    d.error(f->line, f->path +
                                         ": \"none\" is never accepted (an unsigned "
                                         "token proves nothing)");
                } else if (!token::algorithmFromName(n)) {
                    d.error(f->line, f->path + ": unknown algorithm " + quoteValue(n) +
                                         ", expected RS256, RS384, RS512, PS256, PS384, PS512, "
                                         "ES256, ES384, EdDSA, HS256, HS384 or HS512");
                } else if (std::find(out.algorithms.begin(), out.algorithms.end(), n) ==
                           out.algorithms.end()) {
                    out.algorithms.push_back(n);
                }
            }
            if (names.empty()) d.error(f->line, f->path + ": must not be empty");
        }
    }
    auto readOptString = [&](const char* key, std::optional<std::string>& o) {
        if (auto f = m.take(key)) {
            std::string v;
            if (readString(d, *f, v)) o = std::move(v);
        }
    };
    readOptString("issuer", out.issuer);
    readOptString("audience", out.audience);
    if (auto f = m.take("identity_claim")) readString(d, *f, out.identityClaim);
    readOptString("roles_claim", out.rolesClaim);
    if (auto f = m.take("leeway")) readDuration(d, *f, out.leeway, Millis{0});
    if (auto f = m.take("max_lifetime")) {
        Millis v{};
        if (readDuration(d, *f, v, Millis{1000})) out.maxLifetime = v;
    }
    if (auto f = m.take("identity_prefix")) readString(d, *f, out.identityPrefix, true);
    m.finish();

    const bool anyKeys = !out.keys.empty() || !out.hmacSecrets.empty() || !out.jwksFile.empty() ||
                         !out.jwksUrl.empty();
    if (!anyKeys && d.count() == before) {
        d.error(m.line(), "auth.token: needs keys, hmac_secrets, jwks_file or jwks_url");
    }
    // An HS* algorithm with no secret could only ever fail; a secret with HS* not allowed
    // would never be used. Both are configuration mistakes worth a line.
    bool hs = false;
    for (const auto& n : out.algorithms) hs = hs || n.rfind("HS", 0) == 0;
    if (hs && out.hmacSecrets.empty()) {
        d.error(m.line(), "auth.token.algorithms: lists an HS* algorithm but no hmac_secrets");
    }
    if (!out.algorithms.empty() && !hs && !out.hmacSecrets.empty()) {
        d.error(m.line(), "auth.token.hmac_secrets: set, but algorithms allows no HS* algorithm");
    }
    return d.count() == before;
}

void parseLimits(LoadContext& ctx, MapReader& m, LimitsConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("max_connections")) readUint(d, *f, out.maxConnections, 1, kU32Max, true);
    if (auto f = m.take("max_connections_per_ip")) {
        readUint(d, *f, out.maxConnectionsPerIp, 1, kU32Max, true);
    }
    if (auto f = m.take("connection_rate_per_ip")) {
        readRate(d, *f, out.connectionRatePerIp, RateKind::Count);
    }
    if (auto f = m.take("handshake_timeout")) readDuration(d, *f, out.handshakeTimeout, Millis{1});
    if (auto f = m.take("max_packet_size")) {
        readSize(d, *f, out.maxPacketSize, kMinPacket, kMqttMaxPacket);
    }
    if (auto f = m.take("max_subscriptions")) {
        readUint(d, *f, out.maxSubscriptions, 1, kU32Max, true);
    }
    if (auto f = m.take("publish_rate")) readRate(d, *f, out.publishRate, RateKind::Count);
    if (auto f = m.take("publish_bytes_rate")) {
        readRate(d, *f, out.publishBytesRate, RateKind::Bytes);
    }
    if (auto f = m.take("max_keepalive")) {
        Millis v{};
        if (readDuration(d, *f, v, Millis{1000})) {
            if (v > kMaxKeepalive || v.count() % 1000 != 0) {
                d.error(f->line, f->path +
                                     ": must be whole seconds, at most 65535s (MQTT "
                                     "keepalive is a 16-bit number of seconds)");
            } else {
                out.maxKeepalive = v;
            }
        }
    }
    if (auto f = m.take("on_exceed")) {
        readEnum<OnExceed>(
            d, *f, out.onExceed,
            {{"throttle", OnExceed::Throttle}, {"disconnect", OnExceed::Disconnect}});
    }
    if (auto f = m.take("drain_timeout")) readDuration(d, *f, out.drainTimeout, Millis{0});
    if (auto f = m.take("v3_keepalive")) {
        readEnum<V3Keepalive>(d, *f, out.v3Keepalive,
                              {{"accept", V3Keepalive::Accept}, {"refuse", V3Keepalive::Refuse}});
    }
    // MQTT 5 Receive Maximum is 16-bit, so more in-flight messages cannot be negotiated.
    if (auto f = m.take("max_inflight")) readUint(d, *f, out.maxInflight, 1, 65535);
    if (auto f = m.take("max_user_properties")) {
        readUint(d, *f, out.maxUserProperties, 0, kU32Max, true);
    }
    if (auto f = m.take("control_packet_rate")) {
        readRate(d, *f, out.controlPacketRate, RateKind::Count);
    }
    m.finish();
}

void parseBans(LoadContext& ctx, MapReader& m, BansConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("auth_failures")) readUint(d, *f, out.authFailures, 1, kU32Max);
    if (auto f = m.take("window")) readDuration(d, *f, out.window, Millis{1});
    std::optional<Field> duration = m.take("duration");
    bool durationOk = !duration || readDuration(d, *duration, out.duration, Millis{1});
    std::optional<Field> maxDuration = m.take("max_duration");
    bool maxOk = !maxDuration || readDuration(d, *maxDuration, out.maxDuration, Millis{1});
    m.finish();
    if (durationOk && maxOk && out.maxDuration < out.duration) {
        int line = maxDuration ? maxDuration->line : duration->line;
        d.error(line, "bans.max_duration: must be at least bans.duration");
    }
}

namespace {

// The whole file, less one trailing newline (as `echo secret > file` leaves it). Empty when
// it worked, else why not.
std::string readSecretLine(const std::string& path, const char* what, std::string& out) {
    constexpr size_t kMaxSecretBytes = 4096;  // a secret, not a data file
    std::ifstream in(path, std::ios::binary);
    std::string text;
    char buf[1024];
    while (in && text.size() <= kMaxSecretBytes) {
        in.read(buf, sizeof buf);
        text.append(buf, static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) return "cannot read '" + path + "'";
    if (text.size() > kMaxSecretBytes)
        return "'" + path + "' is larger than 4096 bytes (expected " + what + ")";
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.empty()) return "'" + path + "' is empty (expected " + what + ")";
    if (text.find_first_of("\r\n") != std::string::npos)
        return "'" + path + "' holds more than one line (expected " + what + ")";
    out = std::move(text);
    return {};
}

std::string readRedisPassword(const std::string& path, std::string& out) {
    return readSecretLine(path, "the Redis password", out);
}

// The fleet's HMAC key for cluster events and shared ban / connection records.
std::string readClusterKey(const std::string& path, std::string& out) {
    std::string why = readSecretLine(path, "the cluster key", out);
    if (!why.empty()) return why;
    if (out.size() < kMinClusterKeyBytes) {
        out.clear();
        return "'" + path + "' holds fewer than " + std::to_string(kMinClusterKeyBytes) +
               " bytes (make one with: openssl rand -hex 32)";
    }
    return {};
}

}  // namespace

void parseCluster(LoadContext& ctx, MapReader& m, ClusterConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("redis")) {
        HostPort hp;
        if (readHostPort(d, *f, hp, false)) out.redis = std::move(hp);
    }
    if (auto f = m.take("key_prefix")) readString(d, *f, out.keyPrefix, true);
    std::optional<Field> username = m.take("username");
    if (username) readString(d, *username, out.username);
    std::optional<Field> passwordFile = m.take("password_file");
    if (passwordFile && readFilePath(ctx, *passwordFile, out.passwordFile)) {
        std::string why = readRedisPassword(out.passwordFile, out.password);
        if (!why.empty()) d.error(passwordFile->line, passwordFile->path + ": " + why);
    }
    if (auto f = m.take("key_file"); f && readFilePath(ctx, *f, out.keyFile)) {
        std::string why = readClusterKey(out.keyFile, out.key);
        if (!why.empty()) d.error(f->line, f->path + ": " + why);
    }
    m.finish();
    if (!out.username.empty() && !passwordFile) {
        d.error(username->line, username->path + ": needs cluster.password_file");
    }
}

void parseMetrics(LoadContext& ctx, MapReader& m, MetricsConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("bind")) {
        if (readHostPort(d, *f, out.bind, true)) ctx.metricsBindLine = f->line;
    }
    if (auto f = m.take("path")) {
        std::string path;
        if (readString(d, *f, path)) {
            bool plain = path.find_first_of(" \t?#") == std::string::npos;
            if (path.front() != '/' || !plain) {
                d.error(f->line, f->path + ": bad path " + quoteValue(path) +
                                     " (must start with '/', without spaces, '?' or '#')");
            } else if (path == "/healthz") {
                d.error(f->line, f->path + ": /healthz is the health endpoint on the same port");
            } else {
                out.path = std::move(path);
            }
        }
    }
    if (auto f = m.take("enabled")) readBool(d, *f, out.enabled);
    m.finish();
}

void parseAudit(LoadContext& ctx, MapReader& m, AuditConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("log")) {
        std::string log;
        if (readString(d, *f, log)) {
            if (log == "-") {
                out.log = log;
            } else {
                // The log is created by the gateway: its folder must exist and be writable,
                // and the name must not be taken by a folder.
                std::string path = resolvePath(ctx.baseDir, log);
                std::string dir = std::filesystem::path(path).parent_path().string();
                std::string reason = unwritableDirReason(dir);
                if (!reason.empty()) {
                    d.error(f->line,
                            f->path + ": cannot write in " + quoteValue(dir) + ": " + reason);
                } else if (missingDirReason(path).empty()) {
                    d.error(f->line, f->path + ": " + quoteValue(path) + " is a directory");
                } else {
                    out.log = std::move(path);
                }
            }
        }
    }
    if (auto f = m.take("max_events_per_second")) {
        readUint(d, *f, out.maxEventsPerSecond, 1, kU32Max);
    }
    m.finish();
}

void parseAnomaly(LoadContext& ctx, MapReader& m, AnomalyConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("auth_failures")) readUint(d, *f, out.authFailures, 1, kU32Max);
    if (auto f = m.take("topic_scan_distinct")) readUint(d, *f, out.topicScanDistinct, 1, kU32Max);
    if (auto f = m.take("connection_storm")) readUint(d, *f, out.connectionStorm, 1, kU32Max);
    if (auto f = m.take("publish_spike_factor")) readDouble(d, *f, out.publishSpikeFactor, 1.0);
    if (auto f = m.take("window")) readDuration(d, *f, out.window, Millis{1});
    m.finish();
}

void parseTuning(LoadContext& ctx, MapReader& m, TuningConfig& out) {
    if (auto f = m.take("scheduler")) {
        readEnum<TuningConfig::Scheduler>(ctx.diag, *f, out.scheduler,
                                          {{"normal", TuningConfig::Scheduler::Normal},
                                           {"batch", TuningConfig::Scheduler::Batch}});
    }
    m.finish();
}

}  // namespace moat::config::detail
