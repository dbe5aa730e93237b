#include "gateway/tls/TicketChain.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <string>

namespace moat::tls {

namespace {

// Chains above this are not put into tickets (a resumed connection then re-verifies without
// them, and fails closed): a ticket is sent to the client after every handshake.
constexpr size_t kMaxTicketChain = 8 * 1024;

void freeChain(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    sk_X509_pop_free(static_cast<STACK_OF(X509)*>(ptr), X509_free);
}

int chainIndex() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, freeChain);
    return index;
}

// DER certificates back to back.
int onGenerateTicket(SSL* ssl, void*) {
    STACK_OF(X509)* chain = peerIntermediates(ssl);
    SSL_SESSION* session = SSL_get0_session(ssl);
    if (chain == nullptr || sk_X509_num(chain) == 0 || session == nullptr) return 1;
    std::string der;
    for (int i = 0; i < sk_X509_num(chain); ++i) {
        int len = i2d_X509(sk_X509_value(chain, i), nullptr);
        if (len <= 0 || der.size() + static_cast<size_t>(len) > kMaxTicketChain) {
            ERR_clear_error();
            return 1;  // no appdata: the ticket still works, the re-check fails closed
        }
        size_t at = der.size();
        der.resize(at + static_cast<size_t>(len));
        auto* p = reinterpret_cast<unsigned char*>(der.data() + at);
        i2d_X509(sk_X509_value(chain, i), &p);
    }
    // 1 on success; on failure the ticket is issued without the chain (fail closed later).
    if (SSL_SESSION_set1_ticket_appdata(session, der.data(), der.size()) != 1) ERR_clear_error();
    return 1;
}

SSL_TICKET_RETURN onDecryptTicket(SSL* ssl, SSL_SESSION* session, const unsigned char*, size_t,
                                  SSL_TICKET_STATUS status, void*) {
    switch (status) {
        case SSL_TICKET_FATAL_ERR_MALLOC:
        case SSL_TICKET_FATAL_ERR_OTHER:
            return SSL_TICKET_RETURN_ABORT;
        case SSL_TICKET_NONE:
        case SSL_TICKET_EMPTY:
        case SSL_TICKET_NO_DECRYPT:
            return SSL_TICKET_RETURN_IGNORE_RENEW;
        default:
            break;
    }
    void* data = nullptr;
    size_t len = 0;
    if (SSL_SESSION_get0_ticket_appdata(session, &data, &len) == 1 && len > 0) {
        STACK_OF(X509)* chain = sk_X509_new_null();
        const auto* p = static_cast<const unsigned char*>(data);
        const unsigned char* end = p + len;
        while (chain != nullptr && p < end) {
            X509* cert = d2i_X509(nullptr, &p, end - p);
            if (cert == nullptr || sk_X509_push(chain, cert) <= 0) {
                X509_free(cert);
                break;
            }
        }
        ERR_clear_error();
        STACK_OF(X509)* old = static_cast<STACK_OF(X509)*>(SSL_get_ex_data(ssl, chainIndex()));
        if (chain != nullptr && SSL_set_ex_data(ssl, chainIndex(), chain) == 1) {
            sk_X509_pop_free(old, X509_free);
        } else {
            sk_X509_pop_free(chain, X509_free);
        }
    }
    return status == SSL_TICKET_SUCCESS_RENEW ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
}

}  // namespace

bool enableTicketChains(SSL_CTX* ctx) {
    return chainIndex() >= 0 &&
           SSL_CTX_set_session_ticket_cb(ctx, onGenerateTicket, onDecryptTicket, nullptr) == 1;
}

STACK_OF(X509) * peerIntermediates(const SSL* ssl) {
    if (ssl == nullptr) return nullptr;
    STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl);
    if (sent != nullptr) return sent;
    return static_cast<STACK_OF(X509)*>(SSL_get_ex_data(ssl, chainIndex()));
}

}  // namespace moat::tls
