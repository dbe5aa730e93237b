#include "gateway/integrity/Signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>

namespace moat::integrity {

namespace {

constexpr size_t kMaxKeyFile = 64 * 1024;  // a key file larger than this is not a key

bool readKeyFile(const std::string& path, std::string& out, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = path + ": " + std::strerror(errno);
        return false;
    }
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
        error = path + ": read error";
        return false;
    }
    if (out.size() > kMaxKeyFile) {
        error = path + ": too large for a key file";
        return false;
    }
    return true;
}

std::string opensslError() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

// HMAC-SHA256 over `pieces` in order, so the signed bytes are never concatenated.
bool hmac(EVP_MAC_CTX* ctx, std::string_view secret,
          std::initializer_list<std::span<const uint8_t>> pieces, uint8_t out[kHmacSize]) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    size_t len = 0;
    bool ok = EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(secret.data()),
                           secret.size(), params) == 1;
    for (const auto& p : pieces) ok = ok && EVP_MAC_update(ctx, p.data(), p.size()) == 1;
    ok = ok && EVP_MAC_final(ctx, out, &len, kHmacSize) == 1 && len == kHmacSize;
    if (!ok) ERR_clear_error();
    return ok;
}

std::span<const uint8_t> bytesOf(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The signed bytes as pieces: topic, 0x00, payload / topic, 0x01, ts, payload.
bool hmacSigned(EVP_MAC_CTX* ctx, std::string_view secret, std::string_view topic,
                std::string_view payload, std::optional<uint64_t> timestamp,
                uint8_t out[kHmacSize]) {
    static const uint8_t untimed = kFormUntimed;
    static const uint8_t timed = kFormTimed;
    if (!timestamp)
        return hmac(ctx, secret, {bytesOf(topic), {&untimed, 1}, bytesOf(payload)}, out);
    uint8_t ts[kTimestampSize];
    putTimestamp(*timestamp, ts);
    return hmac(ctx, secret, {bytesOf(topic), {&timed, 1}, {ts, sizeof ts}, bytesOf(payload)}, out);
}

struct MacHolder {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
    ~MacHolder() {
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
    }
};

}  // namespace

const char* algorithmName(Algorithm a) {
    return a == Algorithm::HmacSha256 ? "hmac-sha256" : "ed25519";
}

void putTimestamp(uint64_t ts, uint8_t out[kTimestampSize]) {
    for (size_t i = 0; i < kTimestampSize; ++i) out[i] = uint8_t(ts >> (8 * (7 - i)));
}

uint64_t getTimestamp(const uint8_t in[kTimestampSize]) {
    uint64_t v = 0;
    for (size_t i = 0; i < kTimestampSize; ++i) v = v << 8 | in[i];
    return v;
}

void appendSignedBytes(std::string_view topic, std::string_view payload,
                       std::optional<uint64_t> timestamp, std::vector<uint8_t>& out) {
    out.reserve(out.size() + topic.size() + 1 + kTimestampSize + payload.size());
    out.insert(out.end(), topic.begin(), topic.end());
    if (timestamp) {
        uint8_t ts[kTimestampSize];
        putTimestamp(*timestamp, ts);
        out.push_back(kFormTimed);
        out.insert(out.end(), ts, ts + kTimestampSize);
    } else {
        out.push_back(kFormUntimed);
    }
    out.insert(out.end(), payload.begin(), payload.end());
}

// ------------------------------------------------------------------ Key

Key::~Key() {
    if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
}

std::shared_ptr<const Key> Key::hmacSecret(std::string_view secret) {
    return std::make_shared<const Key>(Algorithm::HmacSha256, std::string(secret), nullptr);
}

std::shared_ptr<const Key> Key::ed25519PublicPem(std::string_view pem, std::string& error) {
    BIO* bio = BIO_new_mem_buf(pem.data(), int(pem.size()));
    if (!bio) {
        error = "out of memory";
        return nullptr;
    }
    PkeyPtr key(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    if (!key) {
        error = "not a PEM public key: " + opensslError();
        return nullptr;
    }
    if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
        error = "not an Ed25519 public key";
        return nullptr;
    }
    return std::make_shared<const Key>(Algorithm::Ed25519, std::string(), std::move(key));
}

std::shared_ptr<const Key> Key::ed25519PublicRaw(std::span<const uint8_t> raw32) {
    PkeyPtr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw32.data(), raw32.size()));
    if (!key) {
        ERR_clear_error();
        return nullptr;
    }
    return std::make_shared<const Key>(Algorithm::Ed25519, std::string(), std::move(key));
}

std::shared_ptr<const Key> Key::load(Algorithm algorithm, const std::string& path,
                                     std::string& error) {
    std::string text;
    if (!readKeyFile(path, text, error)) return nullptr;
    if (algorithm == Algorithm::Ed25519) {
        auto key = ed25519PublicPem(text, error);
        if (!key) error = path + ": " + error;
        return key;
    }
    if (text.size() >= 1 && text.back() == '\n') text.pop_back();
    if (text.size() >= 1 && text.back() == '\r') text.pop_back();
    if (text.empty()) {
        error = path + ": empty HMAC secret";
        return nullptr;
    }
    auto key = hmacSecret(text);
    OPENSSL_cleanse(text.data(), text.size());
    return key;
}

// ------------------------------------------------------------------ Verifier

Verifier::Verifier() = default;

Verifier::~Verifier() {
    EVP_MAC_CTX_free(macCtx_);
    EVP_MAC_free(mac_);
    EVP_MD_CTX_free(mdCtx_);
}

bool Verifier::macReady() {
    if (!macCtx_) {
        if (!mac_) mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        if (mac_) macCtx_ = EVP_MAC_CTX_new(mac_);
    }
    return macCtx_ != nullptr;
}

bool Verifier::ed25519(const Key& key, std::span<const uint8_t> message,
                       std::span<const uint8_t> signature) {
    if (!mdCtx_) mdCtx_ = EVP_MD_CTX_new();
    if (!mdCtx_ || !key.pkey()) return false;
    bool ok = EVP_DigestVerifyInit(mdCtx_, nullptr, nullptr, nullptr, key.pkey()) == 1 &&
              EVP_DigestVerify(mdCtx_, signature.data(), signature.size(), message.data(),
                               message.size()) == 1;
    EVP_MD_CTX_reset(mdCtx_);
    if (!ok) ERR_clear_error();
    return ok;
}

bool Verifier::verify(const Key& key, std::string_view topic, std::string_view payload,
                      std::optional<uint64_t> timestamp, std::span<const uint8_t> signature) {
    if (signature.size() != signatureSize(key.algorithm())) return false;
    if (key.algorithm() == Algorithm::HmacSha256) {
        uint8_t expected[kHmacSize];
        if (!macReady() || !hmacSigned(macCtx_, key.secret(), topic, payload, timestamp, expected))
            return false;
        return CRYPTO_memcmp(expected, signature.data(), kHmacSize) == 0;
    }
    // Ed25519 (pure, RFC 8032) has no streaming interface: verify the concatenation.
    scratch_.clear();
    appendSignedBytes(topic, payload, timestamp, scratch_);
    const bool ok = ed25519(key, scratch_, signature);
    // Large payloads must not pin memory for the connection's lifetime.
    if (scratch_.capacity() > 64 * 1024) std::vector<uint8_t>().swap(scratch_);
    return ok;
}

bool Verifier::verifyMessage(const Key& key, std::span<const uint8_t> message,
                             std::span<const uint8_t> signature) {
    if (signature.size() != signatureSize(key.algorithm())) return false;
    if (key.algorithm() == Algorithm::Ed25519) return ed25519(key, message, signature);
    uint8_t expected[kHmacSize];
    if (!macReady() || !hmac(macCtx_, key.secret(), {message}, expected)) return false;
    return CRYPTO_memcmp(expected, signature.data(), kHmacSize) == 0;
}

// ------------------------------------------------------------------ Signer

Signer Signer::hmacSecret(std::string_view secret) {
    return Signer(Algorithm::HmacSha256, std::string(secret), nullptr);
}

std::optional<Signer> Signer::ed25519PrivateRaw(std::span<const uint8_t> seed32) {
    EVP_PKEY* k =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed32.data(), seed32.size());
    if (!k) {
        ERR_clear_error();
        return std::nullopt;
    }
    return Signer(Algorithm::Ed25519, std::string(), std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free));
}

std::optional<Signer> Signer::load(Algorithm algorithm, const std::string& path,
                                   std::string& error) {
    std::string text;
    if (!readKeyFile(path, text, error)) return std::nullopt;
    if (algorithm == Algorithm::HmacSha256) {
        if (!text.empty() && text.back() == '\n') text.pop_back();
        if (!text.empty() && text.back() == '\r') text.pop_back();
        if (text.empty()) {
            error = path + ": empty HMAC secret";
            return std::nullopt;
        }
        Signer s = hmacSecret(text);
        OPENSSL_cleanse(text.data(), text.size());
        return s;
    }
    BIO* bio = BIO_new_mem_buf(text.data(), int(text.size()));
    EVP_PKEY* k = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    OPENSSL_cleanse(text.data(), text.size());
    if (!k) {
        error = path + ": not a PEM private key (Ed25519 signing needs the private key): " +
                opensslError();
        return std::nullopt;
    }
    if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        error = path + ": not an Ed25519 private key";
        return std::nullopt;
    }
    return Signer(Algorithm::Ed25519, std::string(), std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free));
}

std::vector<uint8_t> Signer::sign(std::string_view topic, std::string_view payload,
                                  std::optional<uint64_t> timestamp) const {
    std::vector<uint8_t> sig;
    if (algorithm_ == Algorithm::HmacSha256) {
        MacHolder m;
        sig.resize(kHmacSize);
        if (!m.ctx || !hmacSigned(m.ctx, secret_, topic, payload, timestamp, sig.data()))
            sig.clear();
        return sig;
    }
    std::vector<uint8_t> msg;
    appendSignedBytes(topic, payload, timestamp, msg);
    return signMessage(msg);
}

std::vector<uint8_t> Signer::signMessage(std::span<const uint8_t> msg) const {
    std::vector<uint8_t> sig;
    if (algorithm_ == Algorithm::HmacSha256) {
        MacHolder m;
        sig.resize(kHmacSize);
        if (!m.ctx || !hmac(m.ctx, secret_, {msg}, sig.data())) sig.clear();
        return sig;
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = kEd25519Size;
    sig.resize(len);
    bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey_.get()) == 1 &&
              EVP_DigestSign(ctx, sig.data(), &len, msg.data(), msg.size()) == 1 &&
              len == kEd25519Size;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        sig.clear();
    }
    return sig;
}

}  // namespace moat::integrity
