// Kicks: disconnecting an identity's live sessions on request (an identity ban here or at
// another replica, a revocation or policy change found by another replica's reload).

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <vector>

#include "gateway/net/ClientConnection.h"
#include "gateway/net/Worker.h"
#include "policy/Hex.h"

namespace moat::net {

std::string ClientConnection::certFingerprint() const {
    if (!tls_ || !tls_->peerCertificate()) return {};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(tls_->peerCertificate(), EVP_sha256(), md, &len) != 1) return {};
    return policy::hexEncode(md, len);
}

bool ClientConnection::kick(const std::string& identity, const std::string& fingerprint,
                            uint8_t v5Reason, const std::string& why) {
    // Before authentication finishes there is no identity yet, but the certificate is known: a
    // revocation (it names the certificate) also ends a connection still waiting for CONNECT
    // or checking its password, which would otherwise get in after the kick.
    if ((state_ == State::AwaitConnect || state_ == State::Authenticating) &&
        !fingerprint.empty() && certFingerprint() == fingerprint) {
        endForReload(inspect::ReloadOutcome::CertificateInvalid, v5Reason, why);
        return true;
    }
    // Only sessions that passed authentication carry an identity worth matching.
    if (state_ != State::Established && state_ != State::ConnectingBackend) return false;
    if (identity_ != identity) return false;
    if (!fingerprint.empty() && certFingerprint() != fingerprint) return false;
    audit("disconnect", "", "", "", why);
    closeWithReason(v5Reason);
    return true;
}

size_t Worker::kick(const std::string& identity, const std::string& fingerprint, uint8_t v5Reason,
                    const std::string& why) {
    // Copy: closing detaches connections.
    std::vector<ClientConnection*> conns = connections_;
    size_t n = 0;
    for (auto* c : conns) n += c->kick(identity, fingerprint, v5Reason, why) ? 1 : 0;
    return n;
}

}  // namespace moat::net
