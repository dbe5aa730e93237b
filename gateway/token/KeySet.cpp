#include "gateway/token/KeySet.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "gateway/token/Base64Url.h"
#include "gateway/token/StrictJson.h"

namespace moat::token {

namespace {

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) {
    return {k, EVP_PKEY_free};
}

struct BnFree {
    void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// The family of an RSA / EC / Ed25519 public key made from JWK members.
std::shared_ptr<EVP_PKEY> fromParams(const char* type, OSSL_PARAM* params) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    EVP_PKEY* pkey = nullptr;
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return pkey ? own(pkey) : nullptr;
}

std::shared_ptr<EVP_PKEY> rsaFromJwk(const std::string& n, const std::string& e) {
    BnPtr bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), int(n.size()), nullptr));
    BnPtr be(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), int(e.size()), nullptr));
    if (!bn || !be) return nullptr;
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM* params = nullptr;
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn.get()) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be.get()) == 1)
        params = OSSL_PARAM_BLD_to_param(bld);
    std::shared_ptr<EVP_PKEY> out = params ? fromParams("RSA", params) : nullptr;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return out;
}

std::shared_ptr<EVP_PKEY> ecFromJwk(const char* group, size_t coord, const std::string& x,
                                    const std::string& y) {
    if (x.size() != coord || y.size() != coord) return nullptr;
    std::string point = "\x04" + x + y;  // uncompressed SEC1 point
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
        OSSL_PARAM_construct_end()};
    auto pkey = fromParams("EC", params);
    if (!pkey) return nullptr;
    // fromdata does not promise the point is on the curve: check it (invalid-curve attacks).
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr);
    const bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok ? pkey : nullptr;
}

// A base64url JWK member as bytes, or nullopt when absent / not a string / not base64url.
std::optional<std::string> member(const nlohmann::json& jwk, const char* name) {
    auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) return std::nullopt;
    return base64UrlDecode(it->get_ref<const std::string&>());
}

std::optional<std::string> stringMember(const nlohmann::json& jwk, const char* name) {
    auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

}  // namespace

TokenKey::TokenKey(KeyFamily family, std::shared_ptr<EVP_PKEY> pkey, std::string secret,
                   std::optional<std::string> kid, std::optional<Algorithm> alg, std::string source)
    : family_(family),
      pkey_(std::move(pkey)),
      secret_(std::move(secret)),
      kid_(std::move(kid)),
      alg_(alg),
      source_(std::move(source)) {}

TokenKey::~TokenKey() {
    if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
}

bool readSmallFile(const std::string& path, size_t maxBytes, std::string& out, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = path + ": " + std::strerror(errno);
        return false;
    }
    out.clear();
    char buf[4096];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        out.append(buf, static_cast<size_t>(in.gcount()));
        if (out.size() > maxBytes) {
            error = path + ": larger than " + std::to_string(maxBytes) + " bytes";
            return false;
        }
    }
    if (in.bad()) {
        error = path + ": read error";
        return false;
    }
    return true;
}

std::optional<KeyFamily> familyOfKey(EVP_PKEY* pkey, std::string& error) {
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (static_cast<size_t>(EVP_PKEY_get_bits(pkey)) < kMinRsaBits) {
            error = "RSA key shorter than 2048 bits";
            return std::nullopt;
        }
        return KeyFamily::Rsa;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = {0};
        size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &len) != 1) {
            ERR_clear_error();
            error = "EC key without a named curve";
            return std::nullopt;
        }
        const std::string g(group, len);
        if (g == "prime256v1" || g == "P-256") return KeyFamily::EcP256;
        if (g == "secp384r1" || g == "P-384") return KeyFamily::EcP384;
        error = "EC curve " + g + " is not P-256 or P-384";
        return std::nullopt;
    }
    if (EVP_PKEY_is_a(pkey, "ED25519")) return KeyFamily::Ed25519;
    error = "not an RSA, EC P-256/P-384 or Ed25519 public key";
    return std::nullopt;
}

bool KeySet::addPemFile(const std::string& path, std::string& error) {
    std::string pem;
    if (!readSmallFile(path, kMaxKeyFileBytes, pem, error)) return false;
    return addPem(pem, path, error);
}

bool KeySet::addPem(std::string_view pem, const std::string& source, std::string& error) {
    if (pem.find("PRIVATE KEY") != std::string_view::npos) {
        error = source + ": holds a private key; give the public key only";
        return false;
    }
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* raw = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
    if (!raw && bio) {
        // An IdP often publishes a certificate: take its public key.
        ERR_clear_error();
        BIO_reset(bio);
        if (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
            raw = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    BIO_free(bio);
    ERR_clear_error();
    if (!raw) {
        error = source + ": not a PEM public key or certificate";
        return false;
    }
    auto pkey = own(raw);
    std::string why;
    auto family = familyOfKey(pkey.get(), why);
    if (!family) {
        error = source + ": " + why;
        return false;
    }
    keys_.push_back(std::make_shared<TokenKey>(*family, std::move(pkey), "", std::nullopt,
                                               std::nullopt, source));
    return true;
}

bool KeySet::addHmacSecretFile(const std::string& path, std::string& error) {
    std::string secret;
    if (!readSmallFile(path, kMaxKeyFileBytes, secret, error)) return false;
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
    if (secret.empty()) {
        error = path + ": empty HMAC secret";
        return false;
    }
    addHmacSecret(std::move(secret), path);
    return true;
}

void KeySet::addHmacSecret(std::string secret, const std::string& source,
                           std::optional<std::string> kid) {
    keys_.push_back(std::make_shared<TokenKey>(KeyFamily::Hmac, nullptr, std::move(secret),
                                               std::move(kid), std::nullopt, source));
}

bool KeySet::addJwks(std::string_view text, const std::string& source, std::string& error,
                     std::vector<std::string>& skipped) {
    if (text.size() > kMaxJwksBytes) {
        error = source + ": JWKS larger than 1 MiB";
        return false;
    }
    auto parsed = parseStrictJson(text);
    if (!parsed.value) {
        error = source + ": JWKS is " + parsed.error;
        return false;
    }
    const auto& doc = *parsed.value;
    auto keys = doc.is_object() ? doc.find("keys") : doc.end();
    if (!doc.is_object() || keys == doc.end() || !keys->is_array()) {
        error = source + ": JWKS has no \"keys\" array";
        return false;
    }
    if (keys->size() > kMaxJwksKeys) {
        error = source + ": JWKS has more than " + std::to_string(kMaxJwksKeys) + " keys";
        return false;
    }
    size_t index = 0;
    for (const auto& jwk : *keys) {
        const std::string where = source + " keys[" + std::to_string(index++) + "]";
        if (!jwk.is_object()) {
            skipped.push_back(where + ": not an object");
            continue;
        }
        const auto kty = stringMember(jwk, "kty");
        const auto kid = stringMember(jwk, "kid");
        const auto use = stringMember(jwk, "use");
        const auto algName = stringMember(jwk, "alg");
        const std::string label = where + (kid ? " (kid " + *kid + ")" : "");
        if (use && *use != "sig") {
            skipped.push_back(label + ": use is not \"sig\"");
            continue;
        }
        std::optional<Algorithm> alg;
        if (algName) {
            alg = algorithmFromName(*algName);
            if (!alg) {
                skipped.push_back(label + ": alg " + *algName + " is not supported");
                continue;
            }
        }
        std::shared_ptr<EVP_PKEY> pkey;
        if (kty == "RSA") {
            auto n = member(jwk, "n");
            auto e = member(jwk, "e");
            if (n && e) pkey = rsaFromJwk(*n, *e);
        } else if (kty == "EC") {
            const auto crv = stringMember(jwk, "crv");
            auto x = member(jwk, "x");
            auto y = member(jwk, "y");
            if (crv && x && y) {
                if (*crv == "P-256") pkey = ecFromJwk("prime256v1", 32, *x, *y);
                if (*crv == "P-384") pkey = ecFromJwk("secp384r1", 48, *x, *y);
            }
        } else if (kty == "OKP") {
            const auto crv = stringMember(jwk, "crv");
            auto x = member(jwk, "x");
            if (crv == "Ed25519" && x && x->size() == 32) {
                EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(
                    EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()),
                    x->size());
                ERR_clear_error();
                if (raw) pkey = own(raw);
            }
        } else if (kty == "oct") {
            skipped.push_back(label + ": symmetric keys are taken from hmac_secrets only");
            continue;
        } else {
            skipped.push_back(label + ": kty " + (kty ? *kty : std::string("missing")) +
                              " is not RSA, EC or OKP");
            continue;
        }
        if (!pkey) {
            skipped.push_back(label + ": invalid or unsupported key material");
            continue;
        }
        std::string why;
        auto family = familyOfKey(pkey.get(), why);
        if (!family) {
            skipped.push_back(label + ": " + why);
            continue;
        }
        if (alg && familyOf(*alg) != *family) {
            skipped.push_back(label + ": alg " + *algName + " does not fit a " +
                              familyName(*family) + " key");
            continue;
        }
        keys_.push_back(std::make_shared<TokenKey>(*family, std::move(pkey), "", kid, alg,
                                                   kid ? source + " kid " + *kid : label));
    }
    return true;
}

std::vector<const TokenKey*> KeySet::candidates(Algorithm alg,
                                                const std::optional<std::string>& kid,
                                                bool& kidKnown) const {
    std::vector<const TokenKey*> out;
    kidKnown = false;
    for (const auto& k : keys_) {
        if (kid && k->kid() && *k->kid() == *kid) kidKnown = true;
        if (!k->accepts(alg)) continue;
        if (kid && k->kid() && *k->kid() != *kid) continue;
        out.push_back(k.get());
    }
    return out;
}

bool KeySet::hasFamily(KeyFamily f) const {
    for (const auto& k : keys_)
        if (k->family() == f) return true;
    return false;
}

}  // namespace moat::token
