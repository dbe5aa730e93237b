#include "gateway/tls/Revocation.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace moat::tls {

namespace {

std::string subjectOf(X509* cert) {
    char buf[256];
    if (X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf) == nullptr)
        return "(no subject)";
    return buf;
}

// A CRL counts for `ca` when it names `ca` as issuer and `ca`'s key signed it: a CRL with the
// right name but another key would fail verification at the handshake just the same.
bool issuedBy(X509_CRL* crl, X509* ca) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0) return false;
    EVP_PKEY* key = X509_get0_pubkey(ca);
    const bool ok = key != nullptr && X509_CRL_verify(crl, key) == 1;
    ERR_clear_error();
    return ok;
}

}  // namespace

unsigned long revocationFlags() {
    return X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
}

void enableRevocationChecks(X509_VERIFY_PARAM* param) {
    X509_VERIFY_PARAM_set_flags(param, revocationFlags());
}

std::vector<std::string> casWithoutCrl(const std::vector<X509Ptr>& cas,
                                       const std::vector<X509CrlPtr>& crls) {
    std::vector<std::string> missing;
    for (const X509Ptr& ca : cas) {
        bool found = false;
        for (const X509CrlPtr& crl : crls) {
            if (issuedBy(crl.get(), ca.get())) {
                found = true;
                break;
            }
        }
        if (!found) missing.push_back(subjectOf(ca.get()));
    }
    return missing;
}

std::vector<std::string> intermediateCas(const std::vector<X509Ptr>& cas) {
    std::vector<std::string> out;
    for (const X509Ptr& ca : cas) {
        if (X509_check_ca(ca.get()) == 0) continue;
        // X509_self_signed(cert, 0): issuer == subject and the key matches (no signature check).
        if (X509_self_signed(ca.get(), 0) == 1) continue;
        out.push_back(subjectOf(ca.get()));
    }
    ERR_clear_error();
    return out;
}

}  // namespace moat::tls
