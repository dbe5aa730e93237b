#pragma once
// Message signatures for `integrity.rules` (CONTRACT.md §3 "Signed messages").
//
// What is signed: topic ‖ 0x00 ‖ payload without a timestamp, topic ‖ 0x01 ‖ ts ‖ payload with
// one (ts = Unix seconds, 8 bytes big-endian). The byte after the topic (a topic never holds
// U+0000) tells the two forms apart, and the timestamp sits before the payload at a fixed
// size, so a timestamped message can never be re-read as a longer payload without one.
// HMAC-SHA256 keys are raw secrets; Ed25519 keys are PEM (public for verification, private
// for signing).
//
// Key objects are immutable and shared between worker threads; a Verifier holds the mutable
// OpenSSL state and scratch memory of one connection, so verification allocates nothing for
// HMAC and reuses one buffer for Ed25519 (which needs the whole message at once).

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moat::integrity {

enum class Algorithm : uint8_t { HmacSha256, Ed25519 };

inline constexpr size_t kHmacSize = 32;
inline constexpr size_t kEd25519Size = 64;
inline constexpr size_t kTimestampSize = 8;

inline size_t signatureSize(Algorithm a) {
    return a == Algorithm::HmacSha256 ? kHmacSize : kEd25519Size;
}
const char* algorithmName(Algorithm a);  // "hmac-sha256" | "ed25519"

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A verification key: an HMAC secret or an Ed25519 public key.
class Key {
  public:
    // Reads a key file. HMAC: the raw secret, one trailing "\n" or "\r\n" ignored, must not be
    // empty. Ed25519: a PEM public key ("BEGIN PUBLIC KEY"). Null and `error` set on failure.
    static std::shared_ptr<const Key> load(Algorithm algorithm, const std::string& path,
                                           std::string& error);
    static std::shared_ptr<const Key> hmacSecret(std::string_view secret);
    static std::shared_ptr<const Key> ed25519PublicPem(std::string_view pem, std::string& error);
    static std::shared_ptr<const Key> ed25519PublicRaw(std::span<const uint8_t> raw32);

    Key(Algorithm a, std::string secret, PkeyPtr pkey)
        : algorithm_(a), secret_(std::move(secret)), pkey_(std::move(pkey)) {}
    ~Key();
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;

    Algorithm algorithm() const { return algorithm_; }
    const std::string& secret() const { return secret_; }  // HMAC only
    EVP_PKEY* pkey() const { return pkey_.get(); }         // Ed25519 only

  private:
    Algorithm algorithm_;
    std::string secret_;
    PkeyPtr pkey_;
};

// Verifies signatures for one connection (not thread-safe; reuses its state).
class Verifier {
  public:
    Verifier();
    ~Verifier();
    Verifier(const Verifier&) = delete;
    Verifier& operator=(const Verifier&) = delete;

    // True when `signature` is the key's signature over the signed bytes. Comparison of HMACs is
    // constant-time (CRYPTO_memcmp); a signature of the wrong length is simply invalid.
    bool verify(const Key& key, std::string_view topic, std::string_view payload,
                std::optional<uint64_t> timestamp, std::span<const uint8_t> signature);
    // The bare primitive over arbitrary bytes (known-answer tests: RFC 4231, RFC 8032).
    bool verifyMessage(const Key& key, std::span<const uint8_t> message,
                       std::span<const uint8_t> signature);

  private:
    bool macReady();
    bool ed25519(const Key& key, std::span<const uint8_t> message,
                 std::span<const uint8_t> signature);

    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* macCtx_ = nullptr;
    EVP_MD_CTX* mdCtx_ = nullptr;
    std::vector<uint8_t> scratch_;  // Ed25519: the signed bytes, reused
};

// A signing key, for `moat sign` and tests: an HMAC secret or an Ed25519 PRIVATE key PEM.
class Signer {
  public:
    static std::optional<Signer> load(Algorithm algorithm, const std::string& path,
                                      std::string& error);
    static Signer hmacSecret(std::string_view secret);
    static std::optional<Signer> ed25519PrivateRaw(std::span<const uint8_t> seed32);

    Algorithm algorithm() const { return algorithm_; }
    // The signature, or an empty vector if OpenSSL failed.
    std::vector<uint8_t> sign(std::string_view topic, std::string_view payload,
                              std::optional<uint64_t> timestamp) const;
    // The bare primitive over arbitrary bytes (known-answer tests).
    std::vector<uint8_t> signMessage(std::span<const uint8_t> message) const;

  private:
    Signer(Algorithm a, std::string secret, std::shared_ptr<EVP_PKEY> pkey)
        : algorithm_(a), secret_(std::move(secret)), pkey_(std::move(pkey)) {}
    Algorithm algorithm_;
    std::string secret_;
    std::shared_ptr<EVP_PKEY> pkey_;
};

inline constexpr uint8_t kFormUntimed = 0x00;  // topic ‖ 0x00 ‖ payload
inline constexpr uint8_t kFormTimed = 0x01;    // topic ‖ 0x01 ‖ ts ‖ payload

// The signed bytes, appended to `out` (used by Ed25519 and by tests).
void appendSignedBytes(std::string_view topic, std::string_view payload,
                       std::optional<uint64_t> timestamp, std::vector<uint8_t>& out);
void putTimestamp(uint64_t ts, uint8_t out[kTimestampSize]);
uint64_t getTimestamp(const uint8_t in[kTimestampSize]);

}  // namespace moat::integrity
