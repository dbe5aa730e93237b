#include "gateway/token/SignatureCheck.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

namespace moat::token {

namespace {

const char* digestName(Algorithm alg) {
    switch (alg) {
        case Algorithm::RS256:
        case Algorithm::PS256:
        case Algorithm::ES256:
        case Algorithm::HS256:
            return "SHA256";
        case Algorithm::RS384:
        case Algorithm::PS384:
        case Algorithm::ES384:
        case Algorithm::HS384:
            return "SHA384";
        case Algorithm::RS512:
        case Algorithm::PS512:
        case Algorithm::HS512:
            return "SHA512";
        case Algorithm::EdDSA:
            return nullptr;
    }
    return nullptr;
}

bool isPss(Algorithm alg) {
    return alg == Algorithm::PS256 || alg == Algorithm::PS384 || alg == Algorithm::PS512;
}

// JWS ECDSA signatures are R ‖ S, each the curve's size; OpenSSL wants DER.
bool rawToDer(std::string_view raw, size_t half, std::string& der) {
    if (raw.size() != 2 * half) return false;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), int(half), nullptr);
    BIGNUM* s =
        BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + half), int(half), nullptr);
    bool ok = sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1;
    if (!ok) {
        BN_free(r);
        BN_free(s);
    }
    unsigned char* out = nullptr;
    const int len = ok ? i2d_ECDSA_SIG(sig, &out) : -1;
    ECDSA_SIG_free(sig);
    if (len <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(len));
    OPENSSL_free(out);
    return true;
}

bool verifyHmac(Algorithm alg, const std::string& secret, std::string_view input,
                std::string_view signature) {
    unsigned char mac[64];
    size_t len = 0;
    const bool ok = EVP_Q_mac(nullptr, "HMAC", nullptr, digestName(alg), nullptr, secret.data(),
                              secret.size(), reinterpret_cast<const unsigned char*>(input.data()),
                              input.size(), mac, sizeof mac, &len) != nullptr;
    ERR_clear_error();
    return ok && len == signature.size() && CRYPTO_memcmp(mac, signature.data(), len) == 0;
}

bool verifyAsymmetric(Algorithm alg, EVP_PKEY* pkey, std::string_view input,
                      std::string_view signature) {
    std::string der;
    if (alg == Algorithm::ES256 || alg == Algorithm::ES384) {
        if (!rawToDer(signature, alg == Algorithm::ES256 ? 32 : 48, der)) return false;
        signature = der;
    }
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx.get(), &pctx, digestName(alg), nullptr, nullptr,
                                             pkey, nullptr) == 1;
    if (ok && isPss(alg))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
    ERR_clear_error();
    return ok;
}

}  // namespace

bool verifySignature(Algorithm alg, const TokenKey& key, std::string_view signingInput,
                     std::string_view signature) {
    if (!key.accepts(alg)) return false;  // never another family's key, whatever the caller
    if (key.family() == KeyFamily::Hmac)
        return verifyHmac(alg, key.secret(), signingInput, signature);
    if (!key.pkey()) return false;
    return verifyAsymmetric(alg, key.pkey(), signingInput, signature);
}

}  // namespace moat::token
