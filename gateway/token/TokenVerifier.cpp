#include "gateway/token/TokenVerifier.h"

#include <cmath>

#include "gateway/token/Base64Url.h"
#include "gateway/token/Jwt.h"
#include "gateway/token/SignatureCheck.h"
#include "gateway/token/StrictJson.h"

namespace moat::token {

namespace {

using json = nlohmann::json;

TokenResult refuse(std::string reason) {
    TokenResult r;
    r.reason = std::move(reason);
    return r;
}

// A NumericDate (RFC 7519 §2): a JSON number of seconds, within a sane range.
enum class DateRead { Absent, Bad, Ok };
DateRead readDate(const json& claims, const char* name, double& out) {
    auto it = claims.find(name);
    if (it == claims.end()) return DateRead::Absent;
    if (!it->is_number()) return DateRead::Bad;
    out = it->get<double>();
    if (!std::isfinite(out) || out < 0 || out > 1e11) return DateRead::Bad;
    return DateRead::Ok;
}

bool audienceMatches(const json& claims, const std::string& audience) {
    auto it = claims.find("aud");
    if (it == claims.end()) return false;
    if (it->is_string()) return it->get_ref<const std::string&>() == audience;
    if (!it->is_array()) return false;
    for (const auto& a : *it)
        if (a.is_string() && a.get_ref<const std::string&>() == audience) return true;
    return false;
}

}  // namespace

bool acceptableIdentity(std::string_view id) {
    if (id.empty() || id.size() > 256) return false;
    for (unsigned char c : id)
        if (c < 0x20 || c == 0x7F) return false;
    return true;
}

TokenResult TokenVerifier::verify(std::string_view token, int64_t now) const {
    if (token.size() > kMaxTokenBytes) return refuse("token too large");
    auto parts = splitJwt(token);
    if (!parts) return refuse("token malformed");
    auto headerBytes = base64UrlDecode(parts->headerB64);
    if (!headerBytes) return refuse("token malformed: header is not base64url");
    auto header = parseStrictJson(*headerBytes);
    if (!header.value) return refuse("token malformed: header " + header.error);
    if (!header.value->is_object()) return refuse("token malformed: header is not an object");
    const json& h = *header.value;
    auto algIt = h.find("alg");
    if (algIt == h.end() || !algIt->is_string())
        return refuse("token malformed: header has no alg");
    const std::string& algName = algIt->get_ref<const std::string&>();
    auto alg = algorithmFromName(algName);
    if (!alg || !rules_.algorithms.has(*alg)) return refuse("algorithm not allowed");
    // RFC 7515 §4.1.11: extensions the verifier does not understand must be refused; Moat
    // understands none.
    if (h.contains("crit")) return refuse("token uses critical header extensions");
    std::optional<std::string> kid;
    if (auto k = h.find("kid"); k != h.end()) {
        if (!k->is_string()) return refuse("token malformed: kid is not a string");
        kid = k->get<std::string>();
    }

    auto signature = base64UrlDecode(parts->signatureB64);
    if (!signature) return refuse("token malformed: signature is not base64url");
    bool kidKnown = false;
    const auto keys = keys_.candidates(*alg, kid, kidKnown);
    bool verified = false;
    for (const TokenKey* key : keys) {
        if (verifySignature(*alg, *key, parts->signingInput, *signature)) {
            verified = true;
            break;
        }
    }
    if (!verified) {
        if (kid && !kidKnown) {
            TokenResult r = refuse("unknown key");
            r.unknownKid = kid;
            return r;
        }
        return refuse(keys.empty() ? "unknown key" : "bad signature");
    }

    // Only now, with the signature good, are the claims read.
    auto payloadBytes = base64UrlDecode(parts->payloadB64);
    if (!payloadBytes) return refuse("token malformed: claims are not base64url");
    auto claimsParsed = parseStrictJson(*payloadBytes);
    if (!claimsParsed.value) return refuse("token malformed: claims " + claimsParsed.error);
    if (!claimsParsed.value->is_object())
        return refuse("token malformed: claims are not an object");
    const json& c = *claimsParsed.value;

    const double leeway = static_cast<double>(rules_.leewaySeconds);
    const double t = static_cast<double>(now);
    double exp = 0, nbf = 0, iat = 0;
    switch (readDate(c, "exp", exp)) {
        case DateRead::Absent:
            return refuse("token has no exp");
        case DateRead::Bad:
            return refuse("token malformed: exp is not a date");
        case DateRead::Ok:
            break;
    }
    if (t >= exp + leeway) return refuse("token expired");
    const DateRead nbfRead = readDate(c, "nbf", nbf);
    if (nbfRead == DateRead::Bad) return refuse("token malformed: nbf is not a date");
    if (nbfRead == DateRead::Ok && t + leeway < nbf) return refuse("token not yet valid");
    const DateRead iatRead = readDate(c, "iat", iat);
    if (iatRead == DateRead::Bad) return refuse("token malformed: iat is not a date");
    if (iatRead == DateRead::Ok && iat > t + leeway) return refuse("token issued in the future");
    if (rules_.maxLifetimeSeconds) {
        const double from = iatRead == DateRead::Ok ? iat : t;
        if (exp - from > static_cast<double>(*rules_.maxLifetimeSeconds))
            return refuse("token lifetime above max_lifetime");
    }
    if (rules_.issuer) {
        auto iss = c.find("iss");
        if (iss == c.end() || !iss->is_string() ||
            iss->get_ref<const std::string&>() != *rules_.issuer)
            return refuse("wrong issuer");
    }
    if (rules_.audience && !audienceMatches(c, *rules_.audience)) return refuse("wrong audience");

    auto idIt = c.find(rules_.identityClaim);
    if (idIt == c.end() || !idIt->is_string()) return refuse("token has no identity claim");
    const std::string& id = idIt->get_ref<const std::string&>();
    if (!acceptableIdentity(id)) return refuse("token identity claim is not a usable identity");

    TokenResult r;
    r.status = TokenStatus::Ok;
    r.identity = rules_.identityPrefix + id;
    r.expiresAt = static_cast<int64_t>(std::floor(exp));
    r.algorithm = algName;
    if (rules_.rolesClaim) {
        auto rolesIt = c.find(*rules_.rolesClaim);
        auto take = [&](const std::string& role) {
            if (knownRoles_ && knownRoles_->count(role)) {
                for (const auto& have : r.roles)
                    if (have == role) return;
                r.roles.push_back(role);
            } else if (r.ignoredRoles.size() < 16) {
                r.ignoredRoles.push_back(role.substr(0, 64));
            }
        };
        if (rolesIt != c.end()) {
            if (rolesIt->is_string()) take(rolesIt->get<std::string>());
            if (rolesIt->is_array())
                for (const auto& role : *rolesIt)
                    if (role.is_string()) take(role.get<std::string>());
        }
    }
    return r;
}

}  // namespace moat::token
