#pragma once
// What a certificate says about its holder, and the identity Moat derives from it
// (auth.identity_from). Also the file-level inspections `moat audit` / `moat check` need.

#include <openssl/x509.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gateway/config/Config.h"

namespace moat::tls {

struct CertInfo {
    std::string subjectCn;    // first commonName, UTF-8 (may hold anything: see identityFromCert)
    bool multipleCn = false;  // the subject has more than one commonName
    std::vector<std::string> sanDns, sanUri, sanEmail;  // subjectAltName entries, in order
    std::string serialHex;                              // "3A0F..." (uppercase, no separators)
    std::string subject;                                // RFC 2253: "CN=device1,O=Moat"
    std::string issuer;                                 // RFC 2253
    std::chrono::system_clock::time_point notBefore{}, notAfter{};
};

CertInfo inspectCertificate(X509* cert);

// The identity for `from`: the subject CN (cert_cn) or the FIRST subjectAltName of the kind.
// nullopt when absent or unusable as an MQTT identity — never a guess: a CN that is not unique,
// an empty value, invalid UTF-8, an embedded NUL or any other control character (these would
// let one certificate pose as another in a username, a topic placeholder or a log line).
// The first SAN decides even if a later one would pass: the order is the CA's, not ours.
std::optional<std::string> identityFromCert(const CertInfo& info, config::IdentityFrom from);

// The first certificate of a PEM file ("PATH: no certificates found", "PATH: cannot open: …").
std::optional<CertInfo> loadCertificateFile(const std::string& path, std::string& error);

// The earliest nextUpdate among the CRLs of a PEM file (the one that goes stale first).
// nullopt with `error` set when the file is unreadable, holds no CRL, or a CRL has no
// nextUpdate field.
std::optional<std::chrono::system_clock::time_point> crlNextUpdate(const std::string& crlPath,
                                                                   std::string& error);

// The identity rule on its own (exposed for tests): non-empty, valid UTF-8, no C0/DEL controls.
bool isAcceptableIdentity(const std::string& value);

}  // namespace moat::tls
