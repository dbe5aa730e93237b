// token_bench: CPU per token verification (not a test; no thresholds) — the whole
// TokenVerifier path (base64url, strict JSON header and claims, key lookup, signature, claim
// checks) for RS256 (2048-bit), PS256, ES256, EdDSA and HS256, next to one PBKDF2-SHA512
// password hash at Mosquitto 2.0's 101 iterations and at `moat passwd`'s 1000, for the
// README's Performance section. Keys are generated here; one thread.
//
//   ./token_bench [seconds per algorithm]
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "gateway/token/Base64Url.h"
#include "gateway/token/TokenVerifier.h"

using namespace moat::token;
using Clock = std::chrono::steady_clock;

namespace {

std::string pem(EVP_PKEY* k) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, k);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
}

std::string sign(const std::string& alg, EVP_PKEY* key, const std::string& secret,
                 const std::string& input) {
    if (alg == "HS256") {
        unsigned char mac[64];
        size_t len = 0;
        EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                  reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                  sizeof mac, &len);
        return std::string(reinterpret_cast<char*>(mac), len);
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    EVP_DigestSignInit_ex(ctx, &pctx, alg == "EdDSA" ? nullptr : "SHA256", nullptr, nullptr, key,
                          nullptr);
    if (alg == "PS256") {
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
    if (alg == "ES256") {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
        ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        std::string raw(64, '\0');
        BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data() + 32), 32);
        ECDSA_SIG_free(es);
        return raw;
    }
    return sig;
}

double measure(double seconds, const std::function<bool()>& once) {
    long n = 0;
    const auto start = Clock::now();
    const auto until = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
        if (!once()) {
            std::fprintf(stderr, "verification failed\n");
            std::exit(1);
        }
        ++n;
    }
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    return us / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    const int64_t now = 1'800'000'000;
    const std::string claims = R"({"sub":"alice","iss":"https://idp","aud":"moat","iat":)" +
                               std::to_string(now) + R"(,"exp":)" + std::to_string(now + 600) + "}";
    const std::string secret(48, 'k');
    std::printf("%-8s %12s %14s\n", "alg", "us/verify", "verifies/s");
    for (const char* alg : {"RS256", "PS256", "ES256", "EdDSA", "HS256"}) {
        const std::string a = alg;
        EVP_PKEY* key = nullptr;
        if (a == "RS256" || a == "PS256")
            key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
        if (a == "ES256") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        if (a == "EdDSA") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
        KeySet keys;
        std::string err;
        if (key && !keys.addPem(pem(key), a, err)) return 1;
        if (!key) keys.addHmacSecret(secret, "secret");
        ClaimRules rules;
        rules.algorithms.add(*algorithmFromName(a));
        rules.issuer = "https://idp";
        rules.audience = "moat";
        const std::string input = base64UrlEncode(R"({"alg":")" + a + R"(","typ":"JWT"})") + "." +
                                  base64UrlEncode(claims);
        const std::string token = input + "." + base64UrlEncode(sign(a, key, secret, input));
        TokenVerifier v(rules, keys, nullptr);
        const double us = measure(seconds, [&] { return v.verify(token, now).ok(); });
        std::printf("%-8s %12.1f %14.0f\n", alg, us, 1e6 / us);
        EVP_PKEY_free(key);
    }
    for (int iterations : {101, 1000}) {
        unsigned char out[64];
        const double us = measure(seconds, [&] {
            return PKCS5_PBKDF2_HMAC("password", 8, reinterpret_cast<const unsigned char*>("salt"),
                                     4, iterations, EVP_sha512(), sizeof out, out) == 1;
        });
        std::printf("PBKDF2-SHA512 x%-6d %6.1f %14.0f\n", iterations, us, 1e6 / us);
    }
    return 0;
}
