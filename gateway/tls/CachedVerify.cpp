#include "gateway/tls/CachedVerify.h"

#include <openssl/evp.h>
#include <openssl/x509_vfy.h>

#include <cstring>
#include <memory>
#include <vector>

#include "gateway/tls/Openssl.h"

namespace moat::tls {

namespace {

using Clock = std::chrono::system_clock;

// What the callback needs; owned by the SSL_CTX (ex_data), so it lives exactly as long as
// the context it verifies for.
struct CacheState {
    VerifiedChainCache* cache = nullptr;
    uint64_t generation = 0;
    std::optional<ValidityWindow> crlWindow;  // set when the context checks CRLs
};

void freeState(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    auto* state = static_cast<CacheState*>(ptr);
    if (state == nullptr) return;
    state->cache->dropGeneration(state->generation);
    delete state;
}

int stateIndex() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeState);
    return index;
}

const EVP_MD* sha256() {
    // Fetched once: an implicit fetch per digest costs a provider look-up each time.
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

bool addCert(EVP_MD_CTX* md, X509* cert, std::vector<unsigned char>& buf) {
    const int n = i2d_X509(cert, nullptr);
    if (n <= 0) return false;
    buf.resize(static_cast<size_t>(n));
    unsigned char* p = buf.data();
    if (i2d_X509(cert, &p) != n) return false;
    const uint32_t len = static_cast<uint32_t>(n);  // length-prefixed: no ambiguous splits
    return EVP_DigestUpdate(md, &len, sizeof len) == 1 && EVP_DigestUpdate(md, buf.data(), n) == 1;
}

int verifyWithCache(X509_STORE_CTX* sctx, void* arg) {
    auto* state = static_cast<CacheState*>(arg);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(sctx);
    const bool cacheable =
        state != nullptr && (X509_VERIFY_PARAM_get_flags(param) & X509_V_FLAG_USE_CHECK_TIME) == 0;
    VerifiedChainCache::Key key;
    const bool keyed = cacheable && chainCacheKey(sctx, state->generation, key);
    if (keyed && state->cache->lookup(key, Clock::now())) {
        X509_STORE_CTX_set_error(sctx, X509_V_OK);
        return 1;
    }
    const int ok = X509_verify_cert(sctx);
    if (ok == 1 && keyed && X509_STORE_CTX_get_error(sctx) == X509_V_OK) {
        auto window = chainValidity(X509_STORE_CTX_get0_chain(sctx), state->crlWindow);
        if (window) state->cache->insert(key, window->notBefore, window->expires, Clock::now());
    }
    return ok == 1 ? 1 : 0;  // OpenSSL's own path treats < 0 as a failure too
}

}  // namespace

uint64_t enableCachedVerification(SSL_CTX* ctx, VerifiedChainCache& cache) {
    auto state = std::make_unique<CacheState>();
    state->cache = &cache;
    state->generation = VerifiedChainCache::nextGeneration();
    const unsigned long flags = X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(ctx));
    if (flags & X509_V_FLAG_CRL_CHECK) {
        state->crlWindow = crlValidity(SSL_CTX_get_cert_store(ctx));
        // CRL checking without a CRL refuses everything: nothing to cache, and nothing would be.
        if (!state->crlWindow) state->crlWindow = ValidityWindow{Clock::time_point::max(), {}};
    }
    if (sha256() == nullptr || SSL_CTX_set_ex_data(ctx, stateIndex(), state.get()) != 1) return 0;
    CacheState* raw = state.release();
    SSL_CTX_set_cert_verify_callback(ctx, verifyWithCache, raw);
    return raw->generation;
}

bool chainCacheKey(X509_STORE_CTX* sctx, uint64_t generation, VerifiedChainCache::Key& key) {
    X509* leaf = X509_STORE_CTX_get0_cert(sctx);
    if (leaf == nullptr || sha256() == nullptr) return false;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!md || EVP_DigestInit_ex(md.get(), sha256(), nullptr) != 1) return false;
    // The parameters OpenSSL copied into this verification (from the SSL, hence the context):
    // constant within a generation, hashed anyway so an entry can never outlive a change.
    const X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(sctx);
    const struct {
        uint64_t flags;
        int32_t depth, authLevel;
        uint32_t inherit;
    } params{X509_VERIFY_PARAM_get_flags(param), X509_VERIFY_PARAM_get_depth(param),
             X509_VERIFY_PARAM_get_auth_level(param), X509_VERIFY_PARAM_get_inh_flags(param)};
    static const char kTag[] = "moat verified chain v1";
    if (EVP_DigestUpdate(md.get(), kTag, sizeof kTag) != 1 ||
        EVP_DigestUpdate(md.get(), &params.flags, sizeof params.flags) != 1 ||
        EVP_DigestUpdate(md.get(), &params.depth, sizeof params.depth) != 1 ||
        EVP_DigestUpdate(md.get(), &params.authLevel, sizeof params.authLevel) != 1 ||
        EVP_DigestUpdate(md.get(), &params.inherit, sizeof params.inherit) != 1)
        return false;
    std::vector<unsigned char> buf;
    if (!addCert(md.get(), leaf, buf)) return false;
    // What the client sent (OpenSSL passes the whole list, leaf included).
    STACK_OF(X509)* sent = X509_STORE_CTX_get0_untrusted(sctx);
    const int n = sent ? sk_X509_num(sent) : 0;
    const uint32_t count = static_cast<uint32_t>(n);
    if (EVP_DigestUpdate(md.get(), &count, sizeof count) != 1) return false;
    for (int i = 0; i < n; ++i) {
        if (!addCert(md.get(), sk_X509_value(sent, i), buf)) return false;
    }
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md.get(), key.chain.data(), &len) != 1 || len != key.chain.size())
        return false;
    key.generation = generation;
    return true;
}

std::optional<ValidityWindow> chainValidity(STACK_OF(X509) * verifiedChain,
                                            std::optional<ValidityWindow> crlWindow) {
    const int n = verifiedChain ? sk_X509_num(verifiedChain) : 0;
    if (n == 0) return std::nullopt;
    ValidityWindow w{Clock::time_point::min(), Clock::time_point::max()};
    for (int i = 0; i < n; ++i) {
        X509* cert = sk_X509_value(verifiedChain, i);
        auto from = toTimePoint(X509_get0_notBefore(cert));
        auto until = toTimePoint(X509_get0_notAfter(cert));
        if (!from || !until) return std::nullopt;
        if (*from > w.notBefore) w.notBefore = *from;
        if (*until < w.expires) w.expires = *until;
    }
    if (crlWindow) {
        if (crlWindow->notBefore > w.notBefore) w.notBefore = crlWindow->notBefore;
        if (crlWindow->expires < w.expires) w.expires = crlWindow->expires;
    }
    return w;
}

std::optional<ValidityWindow> crlValidity(X509_STORE* store) {
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
    std::optional<ValidityWindow> w;
    for (int i = 0; objects && i < sk_X509_OBJECT_num(objects); ++i) {
        X509_OBJECT* o = sk_X509_OBJECT_value(objects, i);
        if (X509_OBJECT_get_type(o) != X509_LU_CRL) continue;
        X509_CRL* crl = X509_OBJECT_get0_X509_CRL(o);
        if (!w) w = ValidityWindow{Clock::time_point::min(), Clock::time_point::max()};
        if (auto last = toTimePoint(X509_CRL_get0_lastUpdate(crl))) {
            if (*last > w->notBefore) w->notBefore = *last;
        }
        if (const ASN1_TIME* nextField = X509_CRL_get0_nextUpdate(crl)) {
            auto next = toTimePoint(nextField);
            // A malformed nextUpdate: nothing may be cached under this store.
            if (!next) return ValidityWindow{Clock::time_point::max(), {}};
            if (*next < w->expires) w->expires = *next;
        }
    }
    return w;
}

}  // namespace moat::tls
