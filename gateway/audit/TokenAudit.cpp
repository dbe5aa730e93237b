// auth.token (issue #24): short HMAC secrets, no audience / issuer, no max_lifetime, HS*
// allowed next to public keys, and token identities sharing the certificates' namespace.

#include <fstream>
#include <iterator>

#include "gateway/audit/Checks.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;

namespace {

constexpr size_t kMinHmacSecret = 32;  // RFC 7518 §3.2: a key at least the hash's size

}  // namespace

void auditToken(const config::Config& config, Findings& out) {
    const auto& t = config.auth.token;
    if (!t || !config.auth.hasMethod(config::AuthMethod::Token)) return;
    for (const auto& path : t->hmacSecrets) {
        std::ifstream in(path, std::ios::binary);
        std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!secret.empty() && secret.back() == '\n') secret.pop_back();
        if (!secret.empty() && secret.back() == '\r') secret.pop_back();
        if (in && secret.size() < kMinHmacSecret)
            out.push_back({Severity::High, "token-weak-hmac-secret", "auth.token.hmac_secrets",
                           path + " holds " + std::to_string(secret.size()) +
                               " bytes: an HMAC secret this short can be brute-forced offline "
                               "from one token",
                           "use a random secret of at least 32 bytes (e.g. openssl rand -base64 "
                           "48), or asymmetric keys"});
    }
    if (!t->audience)
        out.push_back({Severity::Medium, "token-no-audience", "auth.token.audience",
                       "no audience: a token the identity provider issued for any other "
                       "application is accepted here",
                       "set auth.token.audience to the audience your IdP puts in Moat's tokens"});
    if (!t->issuer)
        out.push_back({Severity::Medium, "token-no-issuer", "auth.token.issuer",
                       "no issuer: any issuer whose keys are configured is accepted, whatever "
                       "the iss claim says",
                       "set auth.token.issuer to your IdP's issuer URL"});
    if (!t->maxLifetime)
        out.push_back({Severity::Low, "token-no-max-lifetime", "auth.token.max_lifetime",
                       "no max_lifetime: a token minted with a far exp (by mistake or by a "
                       "stolen signing key) stays usable until then",
                       "set auth.token.max_lifetime, e.g. 24h"});
    bool hs = false;
    for (const auto& a : t->algorithms) hs = hs || a.rfind("HS", 0) == 0;
    if (t->algorithms.empty()) hs = !t->hmacSecrets.empty();
    const bool publicKeys = !t->keys.empty() || !t->jwksFile.empty() || !t->jwksUrl.empty();
    if (hs && publicKeys)
        out.push_back({Severity::Medium, "token-hmac-with-public-keys", "auth.token.algorithms",
                       "HS* algorithms are allowed next to public keys: whoever holds the shared "
                       "secret can mint tokens for any identity, which the public-key setup "
                       "otherwise rules out (Moat never uses a public key as an HMAC secret)",
                       "drop the HS* algorithms and hmac_secrets unless a service really needs "
                       "them"});
    if (config.auth.hasMethod(config::AuthMethod::Certificate) && t->identityPrefix.empty() &&
        config.auth.require == config::AuthRequire::Any)
        out.push_back({Severity::Medium, "token-identity-namespace", "auth.token.identity_prefix",
                       "token and certificate identities share one namespace: a token whose " +
                           t->identityClaim +
                           " equals a device's certificate CN gets that device's rights, keys "
                           "and client ids",
                       "set auth.token.identity_prefix, e.g. \"user:\""});
}

}  // namespace moat::audit::detail
