#pragma once
// Test helpers: keys generated at test time with OpenSSL, and JWTs signed with them (the
// signing side is written here independently of the verifier, from RFC 7515 / 7518).

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "gateway/token/Base64Url.h"

namespace moat::token::test {

using PkeyPtr = std::shared_ptr<EVP_PKEY>;

inline PkeyPtr genRsa(int bits = 2048) {
    return {EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)), EVP_PKEY_free};
}
inline PkeyPtr genEc(const char* curve) {
    return {EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve), EVP_PKEY_free};
}
inline PkeyPtr genEd25519() {
    return {EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free};
}

inline std::string publicPem(EVP_PKEY* k) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, k);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
}

inline std::string digestFor(const std::string& alg) {
    const std::string bits = alg.substr(2);
    return "SHA" + bits;
}

// Signs `input` as `alg` with `key` (or `secret` for HS*), returning the raw JWS signature.
inline std::string signRaw(const std::string& alg, EVP_PKEY* key, const std::string& secret,
                           const std::string& input) {
    if (alg.rfind("HS", 0) == 0) {
        unsigned char mac[64];
        size_t len = 0;
        EVP_Q_mac(nullptr, "HMAC", nullptr, digestFor(alg).c_str(), nullptr, secret.data(),
                  secret.size(), reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                  mac, sizeof mac, &len);
        return std::string(reinterpret_cast<char*>(mac), len);
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    const std::string md = alg == "EdDSA" ? "" : digestFor(alg);
    EVP_DigestSignInit_ex(ctx, &pctx, md.empty() ? nullptr : md.c_str(), nullptr, nullptr, key,
                          nullptr);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E' && alg != "EdDSA") {
        // DER → R ‖ S
        const size_t half = alg == "ES256" ? 32 : 48;
        const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
        ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        std::string raw(2 * half, '\0');
        BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()),
                     static_cast<int>(half));
        BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data() + half),
                     static_cast<int>(half));
        ECDSA_SIG_free(es);
        return raw;
    }
    return sig;
}

inline std::string makeJwtRaw(const std::string& headerJson, const std::string& claimsJson,
                              const std::string& alg, EVP_PKEY* key,
                              const std::string& secret = "") {
    const std::string input = base64UrlEncode(headerJson) + "." + base64UrlEncode(claimsJson);
    return input + "." + base64UrlEncode(signRaw(alg, key, secret, input));
}

inline std::string makeJwt(const std::string& alg, const nlohmann::json& claims, EVP_PKEY* key,
                           const std::string& secret = "", const std::string& kid = "") {
    nlohmann::json h = {{"alg", alg}, {"typ", "JWT"}};
    if (!kid.empty()) h["kid"] = kid;
    return makeJwtRaw(h.dump(), claims.dump(), alg, key, secret);
}

inline std::string bnBytes(EVP_PKEY* k, const char* name, int pad = 0) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(k, name, &bn);
    const int len = pad ? pad : BN_num_bytes(bn);
    std::string out(static_cast<size_t>(len), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
    BN_free(bn);
    return out;
}

// A public JWK for `k` (RSA, EC P-256/P-384, Ed25519).
inline nlohmann::json jwkOf(EVP_PKEY* k, const std::string& kid, const std::string& alg = "") {
    nlohmann::json j;
    if (EVP_PKEY_is_a(k, "RSA")) {
        j = {{"kty", "RSA"},
             {"n", base64UrlEncode(bnBytes(k, OSSL_PKEY_PARAM_RSA_N))},
             {"e", base64UrlEncode(bnBytes(k, OSSL_PKEY_PARAM_RSA_E))}};
    } else if (EVP_PKEY_is_a(k, "EC")) {
        const int size = EVP_PKEY_get_bits(k) == 256 ? 32 : 48;
        j = {{"kty", "EC"},
             {"crv", size == 32 ? "P-256" : "P-384"},
             {"x", base64UrlEncode(bnBytes(k, OSSL_PKEY_PARAM_EC_PUB_X, size))},
             {"y", base64UrlEncode(bnBytes(k, OSSL_PKEY_PARAM_EC_PUB_Y, size))}};
    } else {
        unsigned char raw[32];
        size_t len = sizeof raw;
        EVP_PKEY_get_raw_public_key(k, raw, &len);
        j = {{"kty", "OKP"},
             {"crv", "Ed25519"},
             {"x", base64UrlEncode(std::string(reinterpret_cast<char*>(raw), len))}};
    }
    if (!kid.empty()) j["kid"] = kid;
    if (!alg.empty()) j["alg"] = alg;
    j["use"] = "sig";
    return j;
}

}  // namespace moat::token::test
