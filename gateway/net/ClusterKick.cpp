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
    if (state_ != State::Open) return false;
    using Stage = inspect::ConnectionPipeline::Stage;
    const Stage stage = pipeline_->stage();
    const bool named = !fingerprint.empty();
    // The digest only where the pipeline will look at it (a kick visits every connection).
    const bool looks = stage == Stage::AwaitConnect || stage == Stage::Authenticating ||
                       pipeline_->identity() == identity;
    const bool matches = named && looks && certFingerprint() == fingerprint;
    inspect::Action a = pipeline_->onKick(identity, named, matches, v5Reason, why);
    if (a.kind == inspect::Action::Kind::None) return false;
    execute(std::move(a));
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
