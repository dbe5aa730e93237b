#pragma once
// Verifies one JWT for `auth.token` (CONTRACT §2, §3): shape, size, header (alg allowed, no
// "crit"), a key that accepts the alg and matches the kid, the signature, then the claims —
// exp required, nbf / iat with leeway, iss, aud, max_lifetime, the identity claim and the
// roles claim. Pure and thread-safe: time comes in as an argument, keys as an immutable set.
// Every refusal has a short, fixed reason for the audit log; none of them quotes the token.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/token/Algorithm.h"
#include "gateway/token/KeySet.h"

namespace moat::token {

struct ClaimRules {
    AlgorithmSet algorithms;              // allowed "alg"; never empty once configured
    std::optional<std::string> issuer;    // required "iss"
    std::optional<std::string> audience;  // required member of "aud"
    std::string identityClaim = "sub";
    std::optional<std::string> rolesClaim;
    int64_t leewaySeconds = 30;
    std::optional<int64_t> maxLifetimeSeconds;
    std::string identityPrefix;
};

enum class TokenStatus : uint8_t { Ok, Refused };

struct TokenResult {
    TokenStatus status = TokenStatus::Refused;
    std::string reason;    // on refusal: "token expired", "bad signature", "unknown key", …
    std::string identity;  // identity_prefix + the identity claim
    std::vector<std::string> roles;         // from roles_claim, only names in knownRoles
    std::vector<std::string> ignoredRoles;  // from roles_claim, not defined by the policy
    int64_t expiresAt = 0;                  // "exp" (Unix seconds, rounded down)
    std::optional<std::string> unknownKid;  // the token's kid, when no key carries it
    std::string algorithm;                  // the header's alg (for metrics / audit)
    bool ok() const { return status == TokenStatus::Ok; }
};

class TokenVerifier {
  public:
    TokenVerifier(const ClaimRules& rules, const KeySet& keys,
                  const std::set<std::string>* knownRoles)
        : rules_(rules), keys_(keys), knownRoles_(knownRoles) {}

    // `now` in Unix seconds.
    TokenResult verify(std::string_view token, int64_t now) const;

  private:
    const ClaimRules& rules_;
    const KeySet& keys_;
    const std::set<std::string>* knownRoles_;
};

// Identity values a token may carry: non-empty, at most 256 bytes, no control characters.
bool acceptableIdentity(std::string_view id);

}  // namespace moat::token
