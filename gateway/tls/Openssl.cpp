#include "gateway/tls/Openssl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace moat::tls {

std::string takeOpensslError(const char* fallback) {
    unsigned long first = ERR_get_error();
    if (first == 0) return fallback;
    ERR_clear_error();
    char buf[256];
    ERR_error_string_n(first, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed" -> keep the readable tail.
    const char* reason = ERR_reason_error_string(first);
    return reason != nullptr ? std::string(reason) : std::string(buf);
}

std::optional<std::chrono::system_clock::time_point> toTimePoint(const ASN1_TIME* t) {
    if (t == nullptr) return std::nullopt;
    struct tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    time_t secs = timegm(&tm);
    return std::chrono::system_clock::from_time_t(secs);
}

BioPtr openFile(const std::string& path, std::string& error) {
    errno = 0;
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        int err = errno;
        ERR_clear_error();
        error = path + ": cannot open: " + (err != 0 ? std::strerror(err) : "unknown error");
    }
    return bio;
}

namespace {

// Never prompt on the terminal for a passphrase: encrypted keys are refused instead.
int noPassphrase(char*, int, int, void*) {
    return -1;
}

// After a PEM read loop: true when it ended on a clean end of file, not on a broken block.
bool cleanEnd() {
    unsigned long err = ERR_peek_last_error();
    bool clean =
        err == 0 || (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE);
    if (clean) ERR_clear_error();
    return clean;
}

template <typename Ptr, typename ReadFn>
std::vector<Ptr> readAll(const std::string& path, std::string& error, ReadFn read,
                         const char* noneFound) {
    std::vector<Ptr> items;
    BioPtr bio = openFile(path, error);
    if (!bio) return items;
    ERR_clear_error();
    while (auto* item = read(bio.get(), nullptr, noPassphrase, nullptr)) {
        items.emplace_back(item);
    }
    if (!cleanEnd()) {
        error = path + ": " + takeOpensslError();
        items.clear();
    } else if (items.empty()) {
        error = path + ": " + noneFound;
    }
    return items;
}

}  // namespace

std::vector<X509Ptr> readCertificates(const std::string& path, std::string& error) {
    return readAll<X509Ptr>(path, error, PEM_read_bio_X509, "no certificates found");
}

std::vector<X509CrlPtr> readCrls(const std::string& path, std::string& error) {
    return readAll<X509CrlPtr>(path, error, PEM_read_bio_X509_CRL, "no CRLs found");
}

}  // namespace moat::tls
