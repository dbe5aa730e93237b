#pragma once
// The client's intermediates travel inside its session ticket.
//
// OpenSSL serialises the peer certificate into a session ticket but not the intermediates the
// client sent with it, so on a resumed connection SSL_get_peer_cert_chain() is null. The
// gateway re-verifies client certificates after a reload and at CONNECT (Revocation.h); without
// the intermediates, every resumed device under an intermediate CA would fail that re-check
// ("unable to get local issuer certificate") and be disconnected by any reload. The ticket's
// application data (encrypted and authenticated with the ticket) carries them instead.

#include <openssl/ssl.h>

namespace moat::tls {

// Installs the ticket callbacks on `ctx` (besides the ticket key callback). False on failure.
bool enableTicketChains(SSL_CTX* ctx);

// The intermediates the client sent on this connection, or those its resumed ticket carried;
// null when neither. Borrowed: valid while `ssl` lives.
STACK_OF(X509) * peerIntermediates(const SSL* ssl);

}  // namespace moat::tls
