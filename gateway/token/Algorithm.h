#pragma once
// JWS algorithms (RFC 7518 §3, RFC 8037) and the key family each one needs. A key belongs to
// exactly one family, fixed by what the key is (an RSA key, a P-256 point, a secret from
// `hmac_secrets`), never by what a token's header claims: so an RS256 public key can never be
// used as an HS256 secret, nor an ES256 key for ES384 (algorithm confusion, RFC 8725 §2.1).
// "none" is not an algorithm here at all.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace moat::token {

enum class Algorithm : uint8_t {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
};
inline constexpr int kAlgorithmCount = 12;

enum class KeyFamily : uint8_t { Rsa, EcP256, EcP384, Ed25519, Hmac };

std::optional<Algorithm> algorithmFromName(std::string_view name);  // exact, case-sensitive
const char* algorithmName(Algorithm a);
KeyFamily familyOf(Algorithm a);
const char* familyName(KeyFamily f);
std::vector<Algorithm> allAlgorithms();

// A set of algorithms as a bitmask (the `algorithms` allowlist).
class AlgorithmSet {
  public:
    void add(Algorithm a) { bits_ |= 1u << static_cast<unsigned>(a); }
    bool has(Algorithm a) const { return (bits_ >> static_cast<unsigned>(a)) & 1u; }
    bool empty() const { return bits_ == 0; }
    bool hasFamily(KeyFamily f) const {
        for (auto a : allAlgorithms())
            if (has(a) && familyOf(a) == f) return true;
        return false;
    }

  private:
    uint32_t bits_ = 0;
};

}  // namespace moat::token
