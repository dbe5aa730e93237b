#pragma once
// Verification keys for tokens: PEM public keys (`keys`), HMAC secrets (`hmac_secrets`) and
// JWKS documents (`jwks_file`, `jwks_url`). Each key's family comes from what the key is —
// an RSA modulus, a curve point, a secret read from the HMAC list — and a JWK's own "alg"
// narrows it further; a JWKS "oct" (symmetric) key is never taken, so a secret can only come
// from the separate, explicit list (a public document can never become an HMAC secret).
//
// Keys are immutable and shared across worker threads; a KeySet is a cheap value (shared
// pointers), rebuilt whole when a JWKS document changes.

#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/token/Algorithm.h"

namespace moat::token {

inline constexpr size_t kMinRsaBits = 2048;
inline constexpr size_t kMaxKeyFileBytes = 64 * 1024;
inline constexpr size_t kMaxJwksBytes = 1024 * 1024;
inline constexpr size_t kMaxJwksKeys = 256;

class TokenKey {
  public:
    TokenKey(KeyFamily family, std::shared_ptr<EVP_PKEY> pkey, std::string secret,
             std::optional<std::string> kid, std::optional<Algorithm> alg, std::string source);
    ~TokenKey();
    TokenKey(const TokenKey&) = delete;
    TokenKey& operator=(const TokenKey&) = delete;

    KeyFamily family() const { return family_; }
    EVP_PKEY* pkey() const { return pkey_.get(); }         // asymmetric families
    const std::string& secret() const { return secret_; }  // Hmac only
    const std::optional<std::string>& kid() const { return kid_; }
    const std::optional<Algorithm>& alg() const { return alg_; }  // a JWK's "alg", if any
    const std::string& source() const { return source_; }         // file or "jwks:<kid>"
    // True when this key may verify a token signed with `a`: same family, and the JWK's
    // "alg" (when given) is exactly `a`.
    bool accepts(Algorithm a) const { return familyOf(a) == family_ && (!alg_ || *alg_ == a); }

  private:
    KeyFamily family_;
    std::shared_ptr<EVP_PKEY> pkey_;
    std::string secret_;
    std::optional<std::string> kid_;
    std::optional<Algorithm> alg_;
    std::string source_;
};

using KeyPtr = std::shared_ptr<const TokenKey>;

class KeySet {
  public:
    // A PEM public key ("BEGIN PUBLIC KEY") or certificate: RSA (≥ 2048 bits), EC P-256 /
    // P-384 or Ed25519. False and `error` on anything else.
    bool addPemFile(const std::string& path, std::string& error);
    bool addPem(std::string_view pem, const std::string& source, std::string& error);
    // An HMAC secret file: the raw bytes, one trailing "\n" / "\r\n" ignored, not empty.
    bool addHmacSecretFile(const std::string& path, std::string& error);
    void addHmacSecret(std::string secret, const std::string& source,
                       std::optional<std::string> kid = std::nullopt);
    // A JWKS document ({"keys": [...]}). The document must be strict JSON with a "keys" array;
    // a key Moat cannot use (another kty, "use" other than "sig", a bad point, a short RSA
    // key, an "oct" secret) is skipped and described in `skipped`. False and `error` when the
    // document itself is unusable.
    bool addJwks(std::string_view text, const std::string& source, std::string& error,
                 std::vector<std::string>& skipped);
    void add(KeyPtr key) { keys_.push_back(std::move(key)); }
    void addAll(const KeySet& other) {
        keys_.insert(keys_.end(), other.keys_.begin(), other.keys_.end());
    }

    // The keys that may verify a token with this alg and kid: with a kid, the keys carrying
    // it (and keys without a kid: static PEM files and secrets are named by no kid); without
    // one, every key of the family. `kidKnown` says whether any key carries the kid.
    std::vector<const TokenKey*> candidates(Algorithm alg, const std::optional<std::string>& kid,
                                            bool& kidKnown) const;
    bool hasFamily(KeyFamily f) const;
    const std::vector<KeyPtr>& keys() const { return keys_; }
    size_t size() const { return keys_.size(); }

  private:
    std::vector<KeyPtr> keys_;
};

// The family of an OpenSSL public key, or nullopt (with `error`) when tokens cannot use it.
std::optional<KeyFamily> familyOfKey(EVP_PKEY* pkey, std::string& error);
// Reads a small file whole (key files, secrets, JWKS documents); false and `error` on failure
// or when it is larger than `maxBytes`.
bool readSmallFile(const std::string& path, size_t maxBytes, std::string& out, std::string& error);

}  // namespace moat::token
