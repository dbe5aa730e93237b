#include "policy/PasswordFile.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "policy/Base64.h"
#include "policy/LockedRewrite.h"

namespace moat::policy {

namespace {

constexpr size_t kHashBytes = 64;            // SHA-512 output; every Mosquitto variant stores 64
constexpr size_t kNewSaltBytes = 12;         // accepted by Mosquitto 2.0 (exactly 12) and 2.1
constexpr size_t kMaxSaltBytes = 1024;       // Mosquitto writes 12 or 64; anything sane is fine
constexpr size_t kMaxFileBytes = 64u << 20;  // a password file this large is a mistake

struct MdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string_view trimBlanks(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits `content` into lines, without the `\n` and an optional `\r` before it.
template <typename F>
void forEachLine(std::string_view content, F&& f) {
    int number = 0;
    while (!content.empty()) {
        const size_t nl = content.find('\n');
        std::string_view line = content.substr(0, nl);
        content.remove_prefix(nl == std::string_view::npos ? content.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        f(++number, line);
    }
}

bool isSkippedLine(std::string_view line) {
    const std::string_view t = trimBlanks(line);
    return t.empty() || t.front() == '#';
}

// The user of a `user:hash` line (trimmed), or empty for lines without a colon.
std::string_view lineUser(std::string_view line) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return {};
    return trimBlanks(line.substr(0, colon));
}

bool parsePositiveInt(std::string_view s, int& out) {
    if (s.empty() || s.size() > 10) return false;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && out >= 1;
}

bool pbkdf2Sha512(std::string_view password, const std::vector<unsigned char>& salt, int iterations,
                  unsigned char* out) {
    return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                             static_cast<int>(salt.size()), iterations, EVP_sha512(),
                             static_cast<int>(kHashBytes), out) == 1;
}

bool sha512Salted(std::string_view password, const std::vector<unsigned char>& salt,
                  unsigned char* out) {
    MdCtx ctx(EVP_MD_CTX_new());
    unsigned int len = 0;
    return ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha512(), nullptr) == 1 &&
           EVP_DigestUpdate(ctx.get(), password.data(), password.size()) == 1 &&
           EVP_DigestUpdate(ctx.get(), salt.data(), salt.size()) == 1 &&
           EVP_DigestFinal_ex(ctx.get(), out, &len) == 1 && len == kHashBytes;
}

struct ParsedHash {
    PasswordFile::Entry::Kind kind = PasswordFile::Entry::Pbkdf2Sha512;
    int iterations = 1;
    std::vector<unsigned char> salt;
    std::vector<unsigned char> hash;
};

// Parses the part after `user:`. Empty result on success, else why not.
std::string parseHash(std::string_view text, ParsedHash& out) {
    if (text.starts_with("$argon2id$") || text.starts_with("$8$")) {
        return "argon2id hashes are not supported (re-hash with `moat passwd` or "
               "`mosquitto_passwd -H sha512-pbkdf2`)";
    }
    std::string_view rest;
    if (text.starts_with("$7$")) {
        out.kind = PasswordFile::Entry::Pbkdf2Sha512;
        rest = text.substr(3);
        const size_t d = rest.find('$');
        if (d == std::string_view::npos) return "malformed $7$ hash (expected $7$ITER$SALT$HASH)";
        if (!parsePositiveInt(rest.substr(0, d), out.iterations)) {
            return "malformed $7$ hash: iteration count is not a positive integer";
        }
        if (out.iterations > kMaxPbkdf2Iterations) {
            return "$7$ iteration count above " + std::to_string(kMaxPbkdf2Iterations);
        }
        rest.remove_prefix(d + 1);
    } else if (text.starts_with("$6$")) {
        out.kind = PasswordFile::Entry::Sha512;
        out.iterations = 1;
        rest = text.substr(3);
    } else {
        return "not a Mosquitto password hash (expected $7$... or $6$...; plain-text password "
               "files must be converted with `mosquitto_passwd -U`)";
    }
    const size_t d = rest.find('$');
    if (d == std::string_view::npos) return "malformed hash (expected ...$SALT$HASH)";
    if (!base64Decode(rest.substr(0, d), out.salt) || out.salt.empty() ||
        out.salt.size() > kMaxSaltBytes) {
        return "malformed hash: bad base64 salt";
    }
    if (!base64Decode(rest.substr(d + 1), out.hash) || out.hash.size() != kHashBytes) {
        return "malformed hash: hash is not 64 bytes of base64";
    }
    return {};
}

bool readFile(const std::string& path, std::string& out, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = std::strerror(errno);
        return false;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
        error = "read error";
        return false;
    }
    out = std::move(buf).str();
    if (out.size() > kMaxFileBytes) {
        error = "file larger than " + std::to_string(kMaxFileBytes) + " bytes";
        return false;
    }
    return true;
}

}  // namespace

PasswordFile::PasswordFile() {
    decoyEntry_ = Entry{"", Entry::Pbkdf2Sha512, kDefaultPbkdf2Iterations, 0};
    decoySecret_.salt.assign(kNewSaltBytes, 0x5a);
}

std::optional<PasswordFile> PasswordFile::load(const std::string& path,
                                               std::vector<std::string>& errors) {
    std::string content;
    std::string error;
    if (!readFile(path, content, error)) {
        errors.push_back(path + ": cannot read password file: " + error);
        return std::nullopt;
    }
    return parse(content, path, errors);
}

std::optional<PasswordFile> PasswordFile::parse(std::string_view content, const std::string& name,
                                                std::vector<std::string>& errors) {
    PasswordFile file;
    const size_t errorsBefore = errors.size();
    auto fail = [&](int line, const std::string& message) {
        errors.push_back(name + ":" + std::to_string(line) + ": " + message);
    };
    forEachLine(content, [&](int number, std::string_view line) {
        if (isSkippedLine(line)) return;
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            fail(number, "expected user:hash");
            return;
        }
        const std::string_view user = trimBlanks(line.substr(0, colon));
        if (user.empty()) {
            fail(number, "empty user name");
            return;
        }
        ParsedHash parsed;
        if (std::string why = parseHash(trimBlanks(line.substr(colon + 1)), parsed); !why.empty()) {
            fail(number, "user \"" + std::string(user) + "\": " + why);
            return;
        }
        if (auto it = file.byUser_.find(user); it != file.byUser_.end()) {
            fail(number, "user \"" + std::string(user) + "\" already defined on line " +
                             std::to_string(file.entries_[it->second].line));
            return;
        }
        file.byUser_.emplace(std::string(user), file.entries_.size());
        file.entries_.push_back(Entry{std::string(user), parsed.kind, parsed.iterations, number});
        Secret secret;
        secret.salt = std::move(parsed.salt);
        std::memcpy(secret.hash.data(), parsed.hash.data(), kHashBytes);
        file.secrets_.push_back(std::move(secret));
    });
    if (errors.size() != errorsBefore) return std::nullopt;

    // The decoy that unknown users are verified against costs what a typical known user
    // costs: the most common PBKDF2 iteration count in the file (else the default).
    std::map<int, size_t> counts;
    for (const Entry& e : file.entries_) {
        if (e.kind == Entry::Pbkdf2Sha512) ++counts[e.iterations];
    }
    size_t best = 0;
    for (const auto& [iterations, count] : counts) {
        if (count > best) {
            best = count;
            file.decoyEntry_.iterations = iterations;
        }
    }
    if (counts.empty() && !file.entries_.empty()) file.decoyEntry_.kind = Entry::Sha512;
    return file;
}

bool PasswordFile::matches(const Entry& entry, const Secret& secret,
                           std::string_view password) const {
    unsigned char computed[kHashBytes];
    const bool ok = entry.kind == Entry::Pbkdf2Sha512
                        ? pbkdf2Sha512(password, secret.salt, entry.iterations, computed)
                        : sha512Salted(password, secret.salt, computed);
    const bool equal = CRYPTO_memcmp(computed, secret.hash.data(), kHashBytes) == 0;
    OPENSSL_cleanse(computed, sizeof computed);
    return ok && equal;
}

PasswordFile::Verify PasswordFile::verify(std::string_view user, std::string_view password) const {
    const auto it = byUser_.find(user);
    if (it == byUser_.end()) {
        // Burn a comparable amount of work so response time does not reveal unknown users.
        (void)matches(decoyEntry_, decoySecret_, password);
        return Verify::UnknownUser;
    }
    // Mosquitto hashes passwords as C strings, and HMAC zero-pads its key, so a NUL would
    // make "pw\0" verify as "pw". No password with a NUL is ever right; still do the work.
    const bool ok = matches(entries_[it->second], secrets_[it->second], password);
    return ok && password.find('\0') == std::string_view::npos ? Verify::Ok : Verify::BadPassword;
}

bool PasswordFile::hasUser(std::string_view user) const {
    return byUser_.count(user) != 0;
}

std::string hashPassword(std::string_view password, int iterations) {
    if (iterations < 1) iterations = kDefaultPbkdf2Iterations;
    if (iterations > kMaxPbkdf2Iterations) return {};
    std::vector<unsigned char> salt(kNewSaltBytes);
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) return {};
    unsigned char hash[kHashBytes];
    if (!pbkdf2Sha512(password, salt, iterations, hash)) return {};
    std::string out = "$7$" + std::to_string(iterations) + "$";
    out += base64Encode(salt.data(), salt.size());
    out += '$';
    out += base64Encode(hash, sizeof hash);
    OPENSSL_cleanse(hash, sizeof hash);
    return out;
}

bool setPasswordInFile(const std::string& path, std::string_view user, std::string_view password,
                       std::string& error) {
    if (user.empty() || trimBlanks(user) != user || user.front() == '#' ||
        user.find_first_of(std::string_view(":\r\n\0", 4)) != std::string_view::npos) {
        error =
            "invalid user name (must be non-empty, without ':', line breaks, NUL, "
            "surrounding blanks or a leading '#')";
        return false;
    }
    // Mosquitto hashes the password as a C string: a NUL would make the file mean different
    // things to Mosquitto and to Moat.
    if (password.empty() || password.find('\0') != std::string_view::npos) {
        error = "invalid password (must be non-empty, without NUL)";
        return false;
    }

    // Hashed before taking the lock: PBKDF2 is the slow part, other writers need not wait.
    const std::string hash = hashPassword(password);
    if (hash.empty()) {
        error = "cannot hash the password (random number generator failure)";
        return false;
    }
    const std::string newLine = std::string(user) + ":" + hash;

    // Read, edit and replace under the file's lock, through a symbolic link to its target,
    // keeping mode, owner and group (LockedRewrite.h).
    auto edit = [&](const std::string& content, std::string& out, std::string&) {
        out.reserve(content.size() + newLine.size() + 2);
        bool replaced = false;
        forEachLine(content, [&](int, std::string_view line) {
            if (!isSkippedLine(line) && lineUser(line) == user) {
                if (replaced) return;  // a later duplicate: drop it, it would be ambiguous
                replaced = true;
                out += newLine;
            } else {
                out += line;
            }
            out += '\n';
        });
        if (!replaced) out += newLine + "\n";
        return true;
    };
    return rewriteFileLocked(path, 0600, edit, error, kMaxFileBytes);
}

}  // namespace moat::policy
