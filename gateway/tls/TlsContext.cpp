#include "gateway/tls/TlsContext.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "gateway/tls/CachedVerify.h"
#include "gateway/tls/Revocation.h"
#include "gateway/tls/TicketChain.h"
#include "gateway/tls/TicketKeys.h"

namespace moat::tls {

namespace {

constexpr unsigned char kSessionIdContext[] = "moat";

void freeTicketKeys(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    delete static_cast<TicketKeys*>(ptr);
}

// The SSL_CTX owns its TicketKeys through this ex_data slot, so the keys live exactly as long
// as the SSL_CTX — which outlives the TlsContext while sessions created from it still exist.
int ticketKeysIndex() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeTicketKeys);
    return index;
}

int onTicketKey(SSL* ssl, unsigned char keyName[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
    auto* keys =
        static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketKeysIndex()));
    if (keys == nullptr) return -1;
    return keys->onTicket(keyName, iv, cipher, mac, encrypt != 0);
}

int noPassphrase(char*, int, int, void*) {
    return -1;
}

std::string subjectOf(X509* cert) {
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
    return buf;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::create(const config::TlsConfig& config, std::string& error,
                                               VerifiedChainCache& cache) {
    std::shared_ptr<TlsContext> self(new TlsContext());
    self->config_ = config;
    ERR_clear_error();
    self->ctx_.reset(SSL_CTX_new(TLS_server_method()));
    if (!self->ctx_) {
        error = "cannot create TLS context: " + takeOpensslError();
        return nullptr;
    }
    SSL_CTX* ctx = self->ctx_.get();
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Level 2 (112-bit: RSA/DH >= 2048, no SHA-1 signatures) whatever the system's
    // openssl.cnf says: a client must not be able to talk the gateway into weaker
    // certificates or signature algorithms because a container ships a laxer default.
    // A cipher string's own "@SECLEVEL=" still overrides it (moat audit flags level 0).
    SSL_CTX_set_security_level(ctx, kSecurityLevel);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_max_cert_list(ctx, kMaxClientCertList);
    // Needed for resumption whenever client certificates are verified; also keeps tickets of
    // some other application's context from being considered.
    SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);

    if (!self->enableTickets(error) || !self->loadServerCertificate(error) ||
        !self->loadClientVerification(error) || !self->loadCrl(error) ||
        !self->setProtocol(error)) {
        return nullptr;
    }
    // Last: the generation stands for the store and flags as they are now, final.
    if (!config.clientCa.empty() && config.verifyCache) {
        self->trustGeneration_ = enableCachedVerification(ctx, cache);
        if (self->trustGeneration_ == 0) {
            error = "cannot install the verified-chain cache: " + takeOpensslError();
            return nullptr;
        }
    }
    return self;
}

void TlsContext::rotateTicketKeys() {
    tickets_->rotate();
}

bool TlsContext::enableTickets(std::string& error) {
    auto* keys = new TicketKeys(kTicketKeyRotation);
    if (!keys->valid() || SSL_CTX_set_ex_data(ctx_.get(), ticketKeysIndex(), keys) != 1) {
        delete keys;
        error = "cannot create session ticket keys: " + takeOpensslError("no randomness");
        return false;
    }
    tickets_ = keys;
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx_.get(), onTicketKey);
    if (!enableTicketChains(ctx_.get())) {
        error = "cannot install session ticket callbacks: " + takeOpensslError();
        return false;
    }
    SSL_CTX_set_timeout(ctx_.get(), static_cast<long>(kTicketKeyRotation.count()));
    // One ticket per TLS 1.3 handshake (OpenSSL sends two by default): devices reconnect one
    // connection at a time, and each ticket carries the client certificate. Or none
    // (tls.session_tickets: false): building a ticket is about a quarter of a full handshake's
    // server CPU with OpenSSL 3.0 (it serialises the session, certificate included, decodes
    // that again and encrypts it), wasted on devices that never resume.
    if (config_.sessionTickets) {
        SSL_CTX_set_num_tickets(ctx_.get(), 1);
    } else {
        SSL_CTX_set_num_tickets(ctx_.get(), 0);
        SSL_CTX_set_options(ctx_.get(), SSL_OP_NO_TICKET);  // TLS 1.2 too
    }
    // Tickets are stateless: no server-side cache, so no memory per past session.
    SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_OFF);
    return true;
}

bool TlsContext::loadServerCertificate(std::string& error) {
    if (config_.cert.empty() || config_.key.empty()) {
        error = "tls: cert and key are both required";
        return false;
    }
    std::vector<X509Ptr> chain = readCertificates(config_.cert, error);
    if (chain.empty()) return false;
    X509* leaf = chain.front().get();

    BioPtr keyBio = openFile(config_.key, error);
    if (!keyBio) return false;
    ERR_clear_error();
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, noPassphrase, nullptr));
    if (!key) {
        unsigned long err = ERR_peek_last_error();
        bool none = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
        std::string reason = takeOpensslError();
        error = config_.key + (none ? ": no private key found"
                                    : ": cannot read private key (" + reason +
                                          "; encrypted keys are not supported)");
        return false;
    }
    if (X509_check_private_key(leaf, key.get()) != 1) {
        ERR_clear_error();
        error = config_.key + ": private key does not match certificate";
        return false;
    }

    SSL_CTX* ctx = ctx_.get();
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
        error = config_.cert + ": " + takeOpensslError();  // e.g. "ee key too small"
        return false;
    }
    for (size_t i = 1; i < chain.size(); ++i) {
        if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
            error = config_.cert + ": " + takeOpensslError();
            return false;
        }
    }
    if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        error = config_.key + ": " + takeOpensslError();
        return false;
    }
    auto notAfter = toTimePoint(X509_get0_notAfter(leaf));
    if (!notAfter) {
        error = config_.cert + ": malformed notAfter";
        return false;
    }
    serverNotAfter_ = *notAfter;
    return true;
}

bool TlsContext::loadClientVerification(std::string& error) {
    SSL_CTX* ctx = ctx_.get();
    if (config_.clientCa.empty()) {
        if (config_.requireClientCert) {
            error = "tls: require_client_cert needs client_ca";
            return false;
        }
        if (!config_.crl.empty()) {
            error = "tls: crl needs client_ca";
            return false;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        return true;
    }

    clientCas_ = readCertificates(config_.clientCa, error);
    const std::vector<X509Ptr>& cas = clientCas_;
    if (cas.empty()) return false;
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    if (names == nullptr) {
        error = "out of memory";
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // owned by ctx from here on
    for (const X509Ptr& ca : cas) {
        if (X509_check_ca(ca.get()) == 0) {
            error = config_.clientCa + ": " + subjectOf(ca.get()) + " is not a CA certificate";
            return false;
        }
        X509_NAME* name = X509_NAME_dup(X509_get_subject_name(ca.get()));
        if (X509_STORE_add_cert(store, ca.get()) != 1 || name == nullptr ||
            sk_X509_NAME_push(names, name) <= 0) {
            X509_NAME_free(name);
            error = config_.clientCa + ": " + takeOpensslError();
            return false;
        }
    }
    int mode = SSL_VERIFY_PEER;
    if (config_.requireClientCert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    SSL_CTX_set_verify_depth(ctx, kVerifyDepth);
    // OpenSSL already defaults to this purpose on a server; set it so it cannot regress.
    if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        error = "tls: " + takeOpensslError();
        return false;
    }
    return true;
}

long TlsContext::verifyClientCertificate(X509* leaf, STACK_OF(X509) * chain) const {
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> sctx(X509_STORE_CTX_new(),
                                                                         X509_STORE_CTX_free);
    if (!sctx || !X509_STORE_CTX_init(sctx.get(), SSL_CTX_get_cert_store(ctx_.get()), leaf, chain))
        return X509_V_ERR_UNSPECIFIED;
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(sctx.get());
    X509_VERIFY_PARAM_set1(param, SSL_CTX_get0_param(ctx_.get()));
    // Not left to the copy above: the re-check must never be laxer than the handshake.
    if (!config_.crl.empty()) enableRevocationChecks(param);
    X509_STORE_CTX_set_purpose(sctx.get(), X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(sctx.get()) == 1) return X509_V_OK;
    long err = X509_STORE_CTX_get_error(sctx.get());
    return err == X509_V_OK ? X509_V_ERR_UNSPECIFIED : err;
}

bool TlsContext::loadCrl(std::string& error) {
    if (config_.crl.empty()) return true;
    std::vector<X509CrlPtr> crls = readCrls(config_.crl, error);
    if (crls.empty()) return false;
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());
    for (const X509CrlPtr& crl : crls) {
        if (X509_STORE_add_crl(store, crl.get()) != 1) {
            error = config_.crl + ": " + takeOpensslError();
            return false;
        }
    }
    // The whole chain is checked, so every CA of client_ca needs its CRL here; without one,
    // every certificate it issued would be refused at the handshake ("unable to get
    // certificate CRL"). Said now, at `moat check` / start / reload, not per device.
    std::vector<std::string> missing = casWithoutCrl(clientCas_, crls);
    if (!missing.empty()) {
        error = config_.crl + ": no CRL issued by client_ca CA " + missing.front();
        if (missing.size() > 1) error += " (and " + std::to_string(missing.size() - 1) + " more)";
        error +=
            ": revocation is checked along the whole chain, so each CA in client_ca needs "
            "its current CRL in this file";
        return false;
    }
    enableRevocationChecks(SSL_CTX_get0_param(ctx_.get()));
    return true;
}

bool TlsContext::setProtocol(std::string& error) {
    SSL_CTX* ctx = ctx_.get();
    int version = 0;
    if (config_.minVersion == "1.2") {
        version = TLS1_2_VERSION;
    } else if (config_.minVersion == "1.3") {
        version = TLS1_3_VERSION;
    } else {
        error = "tls: min_version must be \"1.2\" or \"1.3\", not \"" + config_.minVersion + "\"";
        return false;
    }
    if (SSL_CTX_set_min_proto_version(ctx, version) != 1) {
        error = "tls: min_version: " + takeOpensslError();
        return false;
    }
    const std::string& ciphers = config_.ciphers.empty() ? kDefaultCiphers : config_.ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
        error = "tls: ciphers \"" + ciphers + "\": " + takeOpensslError();
        return false;
    }
    // Key exchange groups: OpenSSL's default list includes ffdhe2048..8192, and a TLS 1.3
    // ClientHello offering only ffdhe8192 costs the gateway ~100 ms of CPU (X25519: ~1 ms).
    const std::string& groups = config_.groups.empty() ? kDefaultGroups : config_.groups;
    if (SSL_CTX_set1_groups_list(ctx, groups.c_str()) != 1) {
        error = "tls: groups \"" + groups + "\": " + takeOpensslError("unknown group");
        return false;
    }
    if (!config_.ciphersuites.empty() &&
        SSL_CTX_set_ciphersuites(ctx, config_.ciphersuites.c_str()) != 1) {
        error = "tls: ciphersuites \"" + config_.ciphersuites + "\": " + takeOpensslError();
        return false;
    }
    return true;
}

}  // namespace moat::tls
