#pragma once
// Client-certificate chain verification through VerifiedChainCache: installed with
// SSL_CTX_set_cert_verify_callback, so it replaces exactly X509_verify_cert in OpenSSL's
// handshake and nothing else.
//
// What stays as without the cache:
//   - the X509_STORE_CTX OpenSSL hands in is already initialised with the SSL's parameters
//     (depth, purpose "ssl_client", CRL flags, security level); on a miss it goes to
//     X509_verify_cert unchanged, and those parameters are part of the cache key;
//   - require_client_cert: a missing certificate never reaches the callback (OpenSSL refuses
//     it before); the identity is still taken from the peer certificate after the handshake;
//   - proof of possession: the client's CertificateVerify is checked by OpenSSL after this
//     callback on every handshake, cached or not;
//   - refusals: never cached, so a refused chain is verified again every time.
// What differs on a hit: SSL_get0_verified_chain() is empty (no chain was built). Moat does
// not use it: identity comes from the peer certificate, and the re-check of live sessions after
// a reload (TlsContext::verifyClientCertificate) always runs the full X509_verify_cert.
// Not cached: a store whose parameters pin the verification time (X509_V_FLAG_USE_CHECK_TIME).

#include <openssl/ssl.h>

#include <chrono>
#include <optional>

#include "gateway/tls/VerifiedChainCache.h"

namespace moat::tls {

// Installs the cached verification on `ctx` under a new trust generation and returns that
// generation (0 on failure). Call once the store (CAs, CRLs) and the verification flags are
// final: the generation stands for them. Entries of the generation are dropped from `cache`
// when `ctx` is freed. `cache` must outlive `ctx`.
uint64_t enableCachedVerification(SSL_CTX* ctx, VerifiedChainCache& cache);

// The cache key of the chain `sctx` is about to verify (its leaf and the certificates the
// client sent, plus the verification parameters), under `generation`. False when a
// certificate cannot be encoded.
bool chainCacheKey(X509_STORE_CTX* sctx, uint64_t generation, VerifiedChainCache::Key& key);

// [notBefore, expires) of a verified chain: the latest notBefore and earliest notAfter of its
// certificates, narrowed by the CRL window [crlNotBefore, crlExpires) when CRLs were checked.
// nullopt when a date is malformed.
struct ValidityWindow {
    std::chrono::system_clock::time_point notBefore, expires;
};
std::optional<ValidityWindow> chainValidity(STACK_OF(X509) * verifiedChain,
                                            std::optional<ValidityWindow> crlWindow);

// The window of the CRLs in `store`: latest lastUpdate, earliest nextUpdate (a CRL without
// nextUpdate does not bound it). nullopt when the store holds no CRL.
std::optional<ValidityWindow> crlValidity(X509_STORE* store);

}  // namespace moat::tls
