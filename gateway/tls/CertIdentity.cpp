#include "gateway/tls/CertIdentity.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "gateway/tls/Openssl.h"

namespace moat::tls {

namespace {

// Any ASN.1 string type (PrintableString, UTF8String, BMPString, ...) as UTF-8 with its
// exact length, embedded NULs included; nullopt when it cannot be converted.
std::optional<std::string> toUtf8(const ASN1_STRING* value) {
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, value);
    if (len < 0) {
        ERR_clear_error();
        return std::nullopt;
    }
    std::string out(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

// IA5String SAN values are copied byte for byte (validity is judged by identityFromCert).
std::string rawString(const ASN1_STRING* value) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                       static_cast<size_t>(ASN1_STRING_length(value)));
}

std::string nameToString(const X509_NAME* name) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        ERR_clear_error();
        return {};
    }
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string serialToHex(const ASN1_INTEGER* serial) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
    char* hex = bn != nullptr ? BN_bn2hex(bn) : nullptr;
    std::string out = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
    BN_free(bn);
    ERR_clear_error();
    return out;
}

void readSubjectAltNames(X509* cert, CertInfo& info) {
    int critical = 0;
    // Returns null also when the extension appears twice (malformed): then no SAN is trusted.
    auto* names = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr));
    if (names == nullptr) {
        ERR_clear_error();
        return;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
        switch (name->type) {
            case GEN_DNS:
                info.sanDns.push_back(rawString(name->d.dNSName));
                break;
            case GEN_URI:
                info.sanUri.push_back(rawString(name->d.uniformResourceIdentifier));
                break;
            case GEN_EMAIL:
                info.sanEmail.push_back(rawString(name->d.rfc822Name));
                break;
            default:
                break;
        }
    }
    GENERAL_NAMES_free(names);
}

bool validUtf8(const std::string& s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t len = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
        static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
        i += len;
    }
    return true;
}

}  // namespace

bool isAcceptableIdentity(const std::string& value) {
    if (value.empty()) return false;
    for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7F) return false;  // NUL and every other control character
    }
    return validUtf8(value);
}

CertInfo inspectCertificate(X509* cert) {
    CertInfo info;
    if (cert == nullptr) return info;
    const X509_NAME* subject = X509_get_subject_name(cert);
    int cnIndex = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (cnIndex >= 0) {
        const X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, cnIndex);
        info.subjectCn = toUtf8(X509_NAME_ENTRY_get_data(entry)).value_or("");
        info.multipleCn = X509_NAME_get_index_by_NID(subject, NID_commonName, cnIndex) >= 0;
    }
    readSubjectAltNames(cert, info);
    info.serialHex = serialToHex(X509_get0_serialNumber(cert));
    info.subject = nameToString(subject);
    info.issuer = nameToString(X509_get_issuer_name(cert));
    info.notBefore = toTimePoint(X509_get0_notBefore(cert)).value_or(info.notBefore);
    info.notAfter = toTimePoint(X509_get0_notAfter(cert)).value_or(info.notAfter);
    return info;
}

std::optional<std::string> identityFromCert(const CertInfo& info, config::IdentityFrom from) {
    const std::string* value = nullptr;
    auto first = [](const std::vector<std::string>& v) { return v.empty() ? nullptr : &v.front(); };
    switch (from) {
        case config::IdentityFrom::CertCn:
            if (info.multipleCn) return std::nullopt;
            value = &info.subjectCn;
            break;
        case config::IdentityFrom::CertSanDns:
            value = first(info.sanDns);
            break;
        case config::IdentityFrom::CertSanUri:
            value = first(info.sanUri);
            break;
        case config::IdentityFrom::CertSanEmail:
            value = first(info.sanEmail);
            break;
    }
    if (value == nullptr || !isAcceptableIdentity(*value)) return std::nullopt;
    return *value;
}

std::optional<CertInfo> loadCertificateFile(const std::string& path, std::string& error) {
    std::vector<X509Ptr> certs = readCertificates(path, error);
    if (certs.empty()) return std::nullopt;
    return inspectCertificate(certs.front().get());
}

std::optional<std::chrono::system_clock::time_point> crlNextUpdate(const std::string& crlPath,
                                                                   std::string& error) {
    std::vector<X509CrlPtr> crls = readCrls(crlPath, error);
    if (crls.empty()) return std::nullopt;
    std::optional<std::chrono::system_clock::time_point> earliest;
    for (const X509CrlPtr& crl : crls) {
        const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
        auto when = toTimePoint(next);
        if (!when) {
            error = crlPath + ": CRL has no valid nextUpdate";
            return std::nullopt;
        }
        if (!earliest || *when < *earliest) earliest = when;
    }
    return earliest;
}

}  // namespace moat::tls
