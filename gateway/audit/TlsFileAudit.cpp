// Certificate and CRL checks. Reads the files with OpenSSL directly (not gateway/tls): the
// audit must report on files the TLS layer would refuse to load.

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <optional>
#include <set>

#include "gateway/audit/Checks.h"
#include "gateway/tls/Revocation.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;
using SysTime = std::chrono::system_clock::time_point;

namespace {

constexpr auto kExpiryWarning = std::chrono::hours(24 * 30);

struct BioDeleter {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
    void operator()(X509* x) const { X509_free(x); }
};
struct CrlDeleter {
    void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using CrlPtr = std::unique_ptr<X509_CRL, CrlDeleter>;

std::optional<SysTime> toTimePoint(const ASN1_TIME* t) {
    struct tm tm {};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string formatDate(SysTime t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

std::string subjectName(X509* x) {
    char buf[256];
    const X509_NAME* name = X509_get_subject_name(x);
    if (!name || !X509_NAME_oneline(name, buf, sizeof buf)) return "(no subject)";
    return buf;
}

long daysBetween(SysTime from, SysTime to) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::hours>(to - from).count() /
                             24);
}

// Every PEM certificate in the file (a chain or a CA bundle), or a single DER one.
std::vector<X509Ptr> readCertificates(const std::string& path) {
    std::vector<X509Ptr> certs;
    BioPtr bio(BIO_new_file(path.c_str(), "rb"));
    if (!bio) {
        ERR_clear_error();
        return certs;
    }
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(x);
    if (certs.empty() && BIO_reset(bio.get()) >= 0) {
        if (X509* x = d2i_X509_bio(bio.get(), nullptr)) certs.emplace_back(x);
    }
    ERR_clear_error();  // the PEM loop always ends on a "no start line" error
    return certs;
}

std::vector<CrlPtr> readCrls(const std::string& path) {
    std::vector<CrlPtr> crls;
    BioPtr bio(BIO_new_file(path.c_str(), "rb"));
    if (!bio) {
        ERR_clear_error();
        return crls;
    }
    while (X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr))
        crls.emplace_back(c);
    if (crls.empty() && BIO_reset(bio.get()) >= 0) {
        if (X509_CRL* c = d2i_X509_CRL_bio(bio.get(), nullptr)) crls.emplace_back(c);
    }
    ERR_clear_error();
    return crls;
}

// `key` is the config key naming the file ("cert", "client_ca"), `what` how messages call
// its certificates ("server", "client CA").
void auditCertFile(const std::string& path, const std::string& subject, const std::string& key,
                   const std::string& what, SysTime now, Findings& out) {
    const auto certs = readCertificates(path);
    if (certs.empty()) {
        out.push_back({Severity::High, "cert-unreadable", subject,
                       "tls." + key + " " + path +
                           " cannot be read or holds no certificate: the listener cannot start",
                       "point tls." + key + " at a PEM certificate file"});
        return;
    }
    for (const auto& cert : certs) {
        const auto notAfter = toTimePoint(X509_get0_notAfter(cert.get()));
        if (!notAfter) continue;
        const std::string who = subjectName(cert.get()) + " in " + path;
        if (*notAfter <= now) {
            out.push_back({Severity::High, "cert-expired", subject,
                           what + " certificate " + who + " expired on " + formatDate(*notAfter) +
                               ": clients refuse the handshake",
                           "renew the certificate and reload (SIGHUP)"});
        } else if (*notAfter - now <= kExpiryWarning) {
            out.push_back({Severity::Medium, "cert-expiring", subject,
                           what + " certificate " + who + " expires on " + formatDate(*notAfter) +
                               " (in " + std::to_string(daysBetween(now, *notAfter)) + " days)",
                           "renew the certificate and reload (SIGHUP) before it expires"});
        }
    }
}

void auditCrlFile(const std::string& path, const std::string& subject, SysTime now, Findings& out) {
    const auto crls = readCrls(path);
    if (crls.empty()) {
        out.push_back({Severity::High, "crl-unreadable", subject,
                       "crl " + path + " is missing or holds no CRL: revocation cannot be checked",
                       "point tls.crl at the CA's current PEM CRL"});
        return;
    }
    for (const auto& crl : crls) {
        const auto next = toTimePoint(X509_CRL_get0_nextUpdate(crl.get()));
        if (next && *next < now) {
            out.push_back({Severity::Medium, "crl-stale", subject,
                           "crl " + path + " was due for renewal on " + formatDate(*next) +
                               ": certificates revoked since then are still accepted",
                           "fetch a fresh CRL from the CA (automate it) and reload (SIGHUP)"});
        }
    }
}

// With whole-chain revocation checking (gateway/tls/Revocation.h), a CA of client_ca whose CRL
// is not in the crl file makes every certificate it issued fail the handshake; the gateway
// refuses to load such a pair, and the audit says which CA it is.
void auditCrlCoverage(const config::TlsConfig& tls, const std::string& subject, Findings& out) {
    std::string error;
    const auto cas = tls::readCertificates(tls.clientCa, error);
    const auto crls = tls::readCrls(tls.crl, error);
    if (cas.empty() || crls.empty()) return;  // reported as unreadable elsewhere
    for (const std::string& ca : tls::casWithoutCrl(cas, crls)) {
        out.push_back({Severity::High, "crl-missing-for-ca", subject,
                       "crl " + tls.crl + " holds no CRL issued by client_ca CA " + ca +
                           ": revocation is checked along the whole chain, so every device "
                           "certificate under this CA is refused (the gateway does not start)",
                       "add that CA's current CRL to the crl file (concatenate the PEM CRLs), or "
                       "remove the CA from client_ca"});
    }
}

// An intermediate CA in client_ca is a trust anchor of its own: chains are accepted up to it
// without its root, and the certificate itself (it is public) verifies as a client
// certificate for whoever holds its key, with its own CN as identity.
void auditIntermediates(const config::TlsConfig& tls, const std::string& subject, Findings& out) {
    std::string error;
    const auto cas = tls::readCertificates(tls.clientCa, error);
    const auto intermediates = tls::intermediateCas(cas);
    if (intermediates.empty()) return;
    std::string names;
    for (const auto& n : intermediates) names += (names.empty() ? "" : ", ") + n;
    out.push_back({Severity::Low, "client-ca-intermediate", subject,
                   "client_ca " + tls.clientCa + " holds intermediate CA certificate(s) " + names +
                       ": each is trusted on its own, and a CA certificate could be presented "
                       "as a device certificate by whoever holds its key",
                   "put only root CAs in client_ca and let devices send their intermediate "
                   "(leaf first); give the intermediates' CRLs in tls.crl"});
}

}  // namespace

void auditTlsFiles(const config::Config& config, SysTime now, Findings& out) {
    // Listeners often share files: report each file once, under the first listener using it.
    std::set<std::string> seen;
    for (const auto& l : config.listeners) {
        if (!l.tls) continue;
        const std::string subject = "listener " + l.name;
        if (!l.tls->cert.empty() && seen.insert("cert:" + l.tls->cert).second)
            auditCertFile(l.tls->cert, subject, "cert", "server", now, out);
        if (!l.tls->clientCa.empty() && seen.insert("ca:" + l.tls->clientCa).second)
            auditCertFile(l.tls->clientCa, subject, "client_ca", "client CA", now, out);
        if (!l.tls->crl.empty() && seen.insert("crl:" + l.tls->crl).second)
            auditCrlFile(l.tls->crl, subject, now, out);
        if (!l.tls->crl.empty() && !l.tls->clientCa.empty() &&
            seen.insert("crl-ca:" + l.tls->crl + "\n" + l.tls->clientCa).second)
            auditCrlCoverage(*l.tls, subject, out);
        if (!l.tls->clientCa.empty() && seen.insert("ca-int:" + l.tls->clientCa).second)
            auditIntermediates(*l.tls, subject, out);
    }
}

}  // namespace moat::audit::detail
