#pragma once
// RAII owners for the OpenSSL objects gateway/tls handles, and the few helpers every file
// here needs (error queue to text, ASN1_TIME to time_point, reading PEM files).

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moat::tls {

template <auto Free>
struct OpensslDeleter {
    template <typename T>
    void operator()(T* p) const {
        Free(p);
    }
};

using BioPtr = std::unique_ptr<BIO, OpensslDeleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, OpensslDeleter<X509_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpensslDeleter<X509_CRL_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpensslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpensslDeleter<SSL_free>>;

// Drains this thread's OpenSSL error queue and returns its first (root-cause) entry as text,
// or `fallback` when the queue is empty. Always leaves the queue empty: the queue is per
// thread and shared by every connection on a loop, so a stale entry would be blamed on the
// next one.
std::string takeOpensslError(const char* fallback = "unknown OpenSSL error");

// ASN1_TIME (UTCTime or GeneralizedTime) to a system_clock time point; nullopt if malformed.
std::optional<std::chrono::system_clock::time_point> toTimePoint(const ASN1_TIME* t);

// Opens `path` for reading; on failure sets `error` to "PATH: cannot open: <reason>".
BioPtr openFile(const std::string& path, std::string& error);

// Every certificate of a PEM file, in file order. Empty with `error` set when the file cannot
// be read, holds no certificate ("PATH: no certificates found") or a malformed one.
std::vector<X509Ptr> readCertificates(const std::string& path, std::string& error);

// Every CRL of a PEM file, in file order (same error convention, "no CRLs found").
std::vector<X509CrlPtr> readCrls(const std::string& path, std::string& error);

}  // namespace moat::tls
