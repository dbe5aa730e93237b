#include "gateway/net/Snapshot.h"

#include <atomic>

#include "gateway/net/Log.h"

namespace moat::net {

std::shared_ptr<const inspect::PipelineOptions> pipelineOptions(const Snapshot& snap) {
    const config::Config& c = *snap.config;
    auto o = std::make_shared<inspect::PipelineOptions>();
    // Aliasing: the auth section keeps the whole config alive, and exposes only itself.
    o->auth = std::shared_ptr<const config::AuthConfig>(snap.config, &c.auth);
    o->policy = snap.policy;
    o->passwords = snap.passwords;
    o->integrity = snap.integrity;
    o->stampIdentity = c.integrity.stampIdentity;
    o->credentials = c.backend.credentials;
    o->onPublishDenied = c.policy.onPublishDenied;
    o->checkDeliveries = c.policy.checkDeliveries;
    o->maxSubscriptions = c.limits.maxSubscriptions;
    o->maxUserProperties = c.limits.maxUserProperties;
    o->maxInflight = c.limits.maxInflight;
    o->maxPacketSize = c.limits.maxPacketSize;
    o->limiter.publishRate = c.limits.publishRate.perSecond;
    o->limiter.publishBytesRate = c.limits.publishBytesRate.perSecond;
    o->limiter.controlPacketRate = c.limits.controlPacketRate.perSecond;
    o->limiter.disconnectOnExceed = c.limits.onExceed == config::OnExceed::Disconnect;
    o->maxKeepaliveSeconds = static_cast<uint64_t>(c.limits.maxKeepalive.count()) / 1000;
    o->refuseV3Keepalive = c.limits.v3Keepalive == config::V3Keepalive::Refuse;
    o->publishSpike = c.anomaly.publishSpikeFactor > 0;
    o->handshakeTimeoutMs = static_cast<uint64_t>(c.limits.handshakeTimeout.count());
    o->connectTimeoutMs = static_cast<uint64_t>(c.backend.connectTimeout.count());
    return o;
}

std::shared_ptr<const Snapshot::Token> buildTokenSettings(const config::Config& config,
                                                          std::vector<std::string>& errors) {
    const config::TokenAuthConfig& c = *config.auth.token;
    auto t = std::make_shared<Snapshot::Token>();
    std::string err;
    for (const auto& path : c.keys)
        if (!t->fileKeys.addPemFile(path, err)) errors.push_back("auth.token.keys: " + err);
    for (const auto& path : c.hmacSecrets)
        if (!t->fileKeys.addHmacSecretFile(path, err))
            errors.push_back("auth.token.hmac_secrets: " + err);
    if (!c.jwksFile.empty()) {
        std::string text;
        std::vector<std::string> skipped;
        if (!token::readSmallFile(c.jwksFile, token::kMaxJwksBytes, text, err) ||
            !t->fileKeys.addJwks(text, c.jwksFile, err, skipped))
            errors.push_back("auth.token.jwks_file: " + err);
        for (const auto& s : skipped) MOAT_LOG_WARN("auth.token.jwks_file: skipped %s", s.c_str());
    }
    token::ClaimRules& r = t->rules;
    if (c.algorithms.empty()) {
        // Default: every algorithm some configured key can verify (HMAC only with secrets;
        // JWKS documents may bring any asymmetric family).
        const bool jwks = !c.jwksFile.empty() || !c.jwksUrl.empty();
        for (auto a : token::allAlgorithms()) {
            const auto f = token::familyOf(a);
            if (f == token::KeyFamily::Hmac ? !c.hmacSecrets.empty()
                                            : jwks || t->fileKeys.hasFamily(f))
                r.algorithms.add(a);
        }
    } else {
        for (const auto& n : c.algorithms)
            if (auto a = token::algorithmFromName(n)) r.algorithms.add(*a);
    }
    r.issuer = c.issuer;
    r.audience = c.audience;
    r.identityClaim = c.identityClaim;
    r.rolesClaim = c.rolesClaim;
    r.leewaySeconds = c.leeway.count() / 1000;
    if (c.maxLifetime) r.maxLifetimeSeconds = c.maxLifetime->count() / 1000;
    r.identityPrefix = c.identityPrefix;
    for (const auto& role : config.policy.roles) t->roleNames.insert(role.name);
    return t;
}

std::shared_ptr<const Snapshot> buildSnapshot(std::shared_ptr<const config::Config> config,
                                              std::vector<std::string>& errors) {
    static std::atomic<uint64_t> generations{0};
    auto snap = std::make_shared<Snapshot>();
    snap->config = config;
    const size_t before = errors.size();

    std::vector<std::string> policyErrors;
    snap->policy = policy::Policy::compile(config->policy, policyErrors);
    for (auto& e : policyErrors) errors.push_back(config->path + ": policy: " + e);

    if (!config->auth.passwordFile.empty()) {
        auto pw = policy::PasswordFile::load(config->auth.passwordFile, errors);
        if (pw) snap->passwords = std::make_shared<const policy::PasswordFile>(std::move(*pw));
    }
    for (const auto& l : config->listeners) {
        if (l.proxyProtocol == config::ProxyProtocol::Off) continue;
        std::string err;
        auto trusted = proxy::CidrSet::parse(l.trustedProxies, err);
        if (!trusted) {
            errors.push_back(config->path + ":" + std::to_string(l.line) + ": listener '" + l.name +
                             "': trusted_proxies: " + err);
            continue;
        }
        proxy::Versions v = l.proxyProtocol == config::ProxyProtocol::V1   ? proxy::Versions::V1
                            : l.proxyProtocol == config::ProxyProtocol::V2 ? proxy::Versions::V2
                                                                           : proxy::Versions::Any;
        snap->proxy.emplace(l.name, Snapshot::ListenerProxy{v, std::move(*trusted)});
    }
    for (const auto& l : config->listeners) {
        if (!l.websocket) continue;
        std::string err;
        auto trusted = proxy::CidrSet::parse(l.trustedProxies, err);
        if (!trusted) {
            errors.push_back(config->path + ":" + std::to_string(l.line) + ": listener '" + l.name +
                             "': trusted_proxies: " + err);
            continue;
        }
        auto ws = std::make_shared<Snapshot::ListenerWebSocket>();
        ws->trusted = std::move(*trusted);
        ws->options.path = l.websocket->path;
        ws->options.allowedOrigins = l.websocket->allowedOrigins;
        ws->options.forwardedFor = l.websocket->forwardedFor;
        ws->options.trusted = &ws->trusted;
        snap->websocket.emplace(l.name, std::move(ws));
    }
    if (!config->integrity.rules.empty()) {
        std::vector<integrity::RuleSpec> rules;
        for (size_t i = 0; i < config->integrity.rules.size(); ++i) {
            const config::IntegrityRule& r = config->integrity.rules[i];
            integrity::RuleSpec spec;
            spec.topics = r.topics;
            spec.algorithm = r.algorithm == config::IntegrityAlgorithm::Ed25519
                                 ? integrity::Algorithm::Ed25519
                                 : integrity::Algorithm::HmacSha256;
            spec.keyPath = r.key;
            spec.maxAge = r.maxAge;
            spec.disconnect = r.onInvalid == config::OnInvalid::Disconnect;
            spec.name = "integrity.rules[" + std::to_string(i) + "]";
            rules.push_back(std::move(spec));
        }
        std::vector<std::string> keyErrors;
        // One replay cache for the process: a reload must not forget the signatures seen.
        snap->integrity = integrity::KeyStore::build(std::move(rules), keyErrors,
                                                     integrity::ReplayCache::processWide());
        for (size_t i = 0; i < keyErrors.size(); ++i)
            errors.push_back(config->path + ": " + keyErrors[i]);
    }
    if (config->auth.token) {
        std::vector<std::string> tokenErrors;
        auto t = buildTokenSettings(*config, tokenErrors);
        const std::string where =
            config->path + ":" + std::to_string(config->auth.token->line) + ": ";
        for (auto& e : tokenErrors) errors.push_back(where + e);
        snap->token = std::move(t);
    }
    for (const auto& l : config->listeners) {
        if (!l.tls) continue;
        std::string err;
        auto ctx = tls::TlsContext::create(*l.tls, err);
        if (!ctx) {
            errors.push_back(config->path + ":" + std::to_string(l.line) + ": listener '" + l.name +
                             "': " + err);
            continue;
        }
        snap->tls[l.name] = std::move(ctx);
    }
    if (errors.size() != before || !snap->policy) return nullptr;
    snap->pipeline = pipelineOptions(*snap);
    snap->generation = ++generations;
    return snap;
}

std::shared_ptr<const Snapshot> loadSnapshot(const std::string& path,
                                             std::vector<std::string>& errors) {
    config::LoadResult r = config::loadConfigFile(path);
    for (const auto& e : r.errors) errors.push_back(e.toString());
    if (!r.config) return nullptr;
    return buildSnapshot(r.config, errors);
}

}  // namespace moat::net
