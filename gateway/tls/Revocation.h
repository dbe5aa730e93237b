#pragma once
// Certificate revocation, in one place: the verification flags every client-certificate
// check uses (the handshake, the re-check at CONNECT and the re-check of live sessions after a
// reload), and the "which CA has no CRL" question `moat check` and `moat audit` ask.
//
// The whole chain is checked (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL, as
// `openssl verify -crl_check_all`): a device certificate under a revoked intermediate CA is
// refused, not only a revoked device certificate. The price: every CA that issues a
// certificate of the chain must have a current CRL in the `crl:` file, or the handshake fails
// with "unable to get certificate CRL". TlsContext therefore refuses to load a `crl:` file
// that lacks the CRL of a CA in `client_ca` (an intermediate the clients send themselves cannot
// be known in advance: its CRL must be in the file too).

#include <openssl/x509.h>

#include <string>
#include <vector>

#include "gateway/tls/Openssl.h"

namespace moat::tls {

// The X509_V_FLAG_* bits of revocation checking; what enableRevocationChecks() sets.
unsigned long revocationFlags();

// Turns whole-chain CRL checking on in `param` (an SSL_CTX's or an X509_STORE_CTX's).
// Every place that verifies a client certificate against CRLs goes through this function.
void enableRevocationChecks(X509_VERIFY_PARAM* param);

// The CA certificates of `cas` that issued none of `crls` (by issuer name and a valid CRL
// signature), as one-line subjects ("/CN=Moat Dev CA"). With whole-chain checking each of them
// would refuse every certificate it issued.
std::vector<std::string> casWithoutCrl(const std::vector<X509Ptr>& cas,
                                       const std::vector<X509CrlPtr>& crls);

// The certificates of `cas` that are CA certificates but not self-signed: intermediates. Used
// by `moat audit` (an intermediate in client_ca is a trust anchor of its own).
std::vector<std::string> intermediateCas(const std::vector<X509Ptr>& cas);

}  // namespace moat::tls
