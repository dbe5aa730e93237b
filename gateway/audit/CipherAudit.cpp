// Weak TLS 1.2 cipher detection. Two passes:
//  1. the words the operator wrote (RC4, 3DES, aNULL, EXPORT, @SECLEVEL=0, ...), so a weak
//     choice is reported even when this OpenSSL build no longer ships the suite;
//  2. what OpenSSL expands the string to at security level 0, so keywords such as ALL,
//     DEFAULT or COMPLEMENTOFALL cannot hide anonymous, NULL or CBC-SHA1 suites.

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "gateway/audit/Checks.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;

namespace {

struct SslCtxDeleter {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

void add(std::vector<CipherWeakness>& out, Severity severity, const std::string& suite,
         const char* reason) {
    for (const auto& w : out)
        if (w.suite == suite && w.reason == reason) return;
    out.push_back({severity, suite, reason});
}

std::string upper(std::string_view s) {
    std::string u(s);
    for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
}

bool contains(const std::string& s, const char* needle) {
    return s.find(needle) != std::string::npos;
}

// One cipher-string component ("RC4", "ECDHE-RSA-DES-CBC3-SHA", "aNULL", "@SECLEVEL=0").
void scanWord(std::string_view word, std::vector<CipherWeakness>& out) {
    const std::string w = upper(word);
    const std::string original(word);
    if (w.rfind("@SECLEVEL=0", 0) == 0) {
        add(out, Severity::High, original, "disables OpenSSL's key-size and suite checks");
        return;
    }
    if (contains(w, "ANULL")) {
        add(out, Severity::High, original, "anonymous key exchange");
    } else if (contains(w, "NULL")) {
        add(out, Severity::High, original, "no encryption");
    }
    if (w.rfind("ADH", 0) == 0 || w.rfind("AECDH", 0) == 0)
        add(out, Severity::High, original, "anonymous key exchange");
    if (w.rfind("EXP", 0) == 0 || contains(w, "EXPORT"))
        add(out, Severity::High, original, "export-grade");
    if (contains(w, "RC4")) add(out, Severity::High, original, "RC4");
    const bool tripleDes =
        contains(w, "3DES") || contains(w, "DES-CBC3") || contains(w, "DES-EDE3");
    if (tripleDes) {
        add(out, Severity::Medium, original, "3DES (Sweet32)");
    } else if (contains(w, "DES")) {
        add(out, Severity::High, original, "single DES");
    }
    if (contains(w, "MD5")) add(out, Severity::Medium, original, "MD5");
}

void scanWords(std::string_view list, std::vector<CipherWeakness>& out) {
    size_t i = 0;
    while (i < list.size()) {
        size_t end = list.find_first_of(":, ;", i);
        if (end == std::string_view::npos) end = list.size();
        std::string_view token = list.substr(i, end - i);
        i = end + 1;
        // "!X" and "-X" remove suites: naming a weak one there is the right thing to do.
        if (token.empty() || token[0] == '!' || token[0] == '-') continue;
        if (token[0] == '+') token.remove_prefix(1);
        size_t j = 0;
        while (j <= token.size()) {
            size_t plus = token.find('+', j);
            if (plus == std::string_view::npos) plus = token.size();
            if (plus > j) scanWord(token.substr(j, plus - j), out);
            j = plus + 1;
        }
    }
}

void scanExpansion(std::string_view list, std::vector<CipherWeakness>& out) {
    std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) return;
    // Level 0: report what the string asks for, not what today's default level would let
    // through (the gateway's context, or a later OpenSSL config, may use another level).
    SSL_CTX_set_security_level(ctx.get(), 0);
    const std::string s(list);
    if (SSL_CTX_set_cipher_list(ctx.get(), s.c_str()) != 1) {
        ERR_clear_error();  // "no cipher match": the config loader / TLS layer reports it
        return;
    }
    STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx.get());
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
        const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
        const int kx = SSL_CIPHER_get_kx_nid(c);
        if (kx == NID_kx_any) continue;  // TLS 1.3 suites: governed by ciphersuites, all sound
        const std::string name = SSL_CIPHER_get_name(c);
        const int enc = SSL_CIPHER_get_cipher_nid(c);
        const int auth = SSL_CIPHER_get_auth_nid(c);
        const int digest = SSL_CIPHER_get_digest_nid(c);
        if (auth == NID_auth_null) add(out, Severity::High, name, "anonymous key exchange");
        if (enc == NID_undef) add(out, Severity::High, name, "no encryption");
        if (enc == NID_rc4 || enc == NID_rc4_40) add(out, Severity::High, name, "RC4");
        if (enc == NID_des_cbc) add(out, Severity::High, name, "single DES");
        if (enc == NID_des_ede3_cbc) add(out, Severity::Medium, name, "3DES (Sweet32)");
        if (digest == NID_md5) add(out, Severity::Medium, name, "MD5");
        if (digest == NID_sha1 && enc != NID_undef && !SSL_CIPHER_is_aead(c))
            add(out, Severity::Medium, name, "CBC with SHA-1 MAC");
        if (kx == NID_kx_rsa)
            add(out, Severity::Low, name, "RSA key exchange (no forward secrecy)");
    }
}

}  // namespace

std::vector<CipherWeakness> weakCiphers(std::string_view cipherList) {
    std::vector<CipherWeakness> out;
    scanWords(cipherList, out);
    scanExpansion(cipherList, out);
    // Worst first, so a truncated list in a message still shows what matters.
    std::stable_sort(out.begin(), out.end(), [](const CipherWeakness& a, const CipherWeakness& b) {
        return static_cast<int>(a.severity) < static_cast<int>(b.severity);
    });
    return out;
}

}  // namespace moat::audit::detail
