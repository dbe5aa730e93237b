#pragma once
// The server-side TLS configuration of one listener: an immutable, shareable SSL_CTX.
//
// Built once per listener from config::TlsConfig (and rebuilt on SIGHUP: a reload makes a new
// TlsContext and swaps the shared_ptr; sessions already running keep the SSL_CTX they were
// created from, since every SSL holds a reference to it). One TlsContext should be shared by
// all the workers of a listener so that session tickets resume on any worker; SSL_CTX is
// thread-safe for SSL_new once configured, and nothing here mutates it afterwards.
//
// What create() sets up:
//   - certificate chain (leaf first) and private key, checked to match;
//   - client certificates: verified against client_ca, depth <= 8, purpose "TLS client"
//     (a certificate whose EKU lacks clientAuth is refused); required (mTLS) or optional
//     (a certificate that is presented must still verify) per require_client_cert;
//   - CRL: every CRL of the file goes into the store and the whole chain is revocation-checked
//     (see Revocation.h: CRL_CHECK | CRL_CHECK_ALL), so every CA of the chain needs its CRL in
//     the file; a file lacking the CRL of a CA in client_ca is refused here;
//   - protocol >= min_version (1.2 / 1.3), `ciphers` for TLS 1.2 (default
//     "ECDHE+AESGCM:ECDHE+CHACHA20": forward secrecy and AEAD only), `ciphersuites` for 1.3,
//     server cipher preference, key exchange `groups` (default X25519:P-256:P-384: no FFDHE,
//     whose big groups let any client make the gateway spend ~100 ms per handshake),
//     security level 2 whatever openssl.cnf says;
//   - session tickets with rotating keys (see TicketKeys.h; tickets live 1 to 2 hours and die
//     with the context, so a reload forces full handshakes), one ticket per TLS 1.3
//     handshake, no server-side session cache (no per-session memory on the server);
//   - verified client-certificate chains cached (verify_cache, default on; CachedVerify.h):
//     a known device reconnecting without a ticket skips chain verification, never the proof
//     of possession; the cache key carries this context's trust generation, so a reload (new
//     CA bundle or CRL) never hits an entry verified under the old one;
//   - no renegotiation, no compression, SSL_MODE_RELEASE_BUFFERS (an idle connection holds
//     no record buffers), client certificate chains capped at 32 KiB.

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/tls/Openssl.h"
#include "gateway/tls/VerifiedChainCache.h"

namespace moat::tls {

class TicketKeys;

class TlsContext {
  public:
    // How often session-ticket keys rotate; also the advertised ticket lifetime.
    static constexpr std::chrono::seconds kTicketKeyRotation{3600};
    static constexpr int kVerifyDepth = 8;
    static constexpr long kMaxClientCertList = 32 * 1024;
    static constexpr const char* kDefaultCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
    static constexpr const char* kDefaultGroups = "X25519:P-256:P-384";
    static constexpr int kSecurityLevel = 2;

    // Null with `error` set ("PATH: what is wrong", or OpenSSL's reason) on any problem.
    // `cache` holds the verified chains (verify_cache); tests pass their own.
    static std::shared_ptr<TlsContext> create(
        const config::TlsConfig& config, std::string& error,
        VerifiedChainCache& cache = VerifiedChainCache::processWide());

    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    SSL_CTX* native() const { return ctx_.get(); }
    const config::TlsConfig& config() const { return config_; }

    // notAfter of the leaf server certificate (moat_certificate_expiry_seconds).
    std::chrono::system_clock::time_point serverCertNotAfter() const { return serverNotAfter_; }

    // The trust generation of the chain cache (0: no cache, e.g. verify_cache off or no
    // client_ca).
    uint64_t trustGeneration() const { return trustGeneration_; }

    // Starts a new ticket key now (the previous one keeps decrypting for one more period).
    void rotateTicketKeys();

    // Re-verifies a client certificate (leaf + the chain it sent) against this context's CA
    // bundle, CRL and verification flags: after a reload, live sessions are held to the new
    // CRL. Returns X509_V_OK or the verification error (e.g. X509_V_ERR_CERT_REVOKED).
    long verifyClientCertificate(X509* leaf, STACK_OF(X509) * chain) const;

  private:
    TlsContext() = default;

    bool loadServerCertificate(std::string& error);
    bool loadClientVerification(std::string& error);
    bool loadCrl(std::string& error);
    bool setProtocol(std::string& error);
    bool enableTickets(std::string& error);

    config::TlsConfig config_;
    SslCtxPtr ctx_;
    std::vector<X509Ptr> clientCas_;  // client_ca, kept to check the CRL file covers each
    TicketKeys* tickets_ = nullptr;   // owned by ctx_ (ex_data), lives as long as the SSL_CTX
    std::chrono::system_clock::time_point serverNotAfter_{};
    uint64_t trustGeneration_ = 0;
};

}  // namespace moat::tls
