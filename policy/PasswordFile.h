#pragma once
// Mosquitto password files (`mosquitto_passwd`), one `user:hash` per line:
//
//   $7$<iterations>$<base64 salt>$<base64 hash>   PBKDF2-HMAC-SHA512, 64-byte hash. Mosquitto
//                                                 2.0 writes 101 iterations and a 12-byte salt;
//                                                 2.1 writes 1000 iterations and a 64-byte salt.
//   $6$<base64 salt>$<base64 hash>                SHA-512(password || salt) (Mosquitto <= 1.6;
//                                                 weak: `moat audit` flags it).
//
// Blank lines and lines starting with `#` are ignored; blanks around user and hash are
// trimmed (as Mosquitto does). A user listed twice is an error (which line wins would be a
// guess). Mosquitto 2.1's `$argon2id$` hashes need libargon2 / OpenSSL
// 3.2 and are reported as unsupported rather than silently never matching.
//
// A loaded PasswordFile is immutable: verify() may run concurrently on any number of threads.

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat::policy {

// What hashPassword() uses by default: Mosquitto 2.1's PBKDF2 iteration count (2.0 used 101).
inline constexpr int kDefaultPbkdf2Iterations = 1000;
// Refused above this: one login would pin a verification thread for seconds.
inline constexpr int kMaxPbkdf2Iterations = 10'000'000;

class PasswordFile {
  public:
    enum class Verify { Ok, BadPassword, UnknownUser };

    struct Entry {
        std::string user;
        enum Kind { Sha512, Pbkdf2Sha512 } kind;
        int iterations;  // 1 for Sha512
        int line;        // 1-based line in the file
    };

    // Reads and parses `path`. Problems are appended to `errors` as "path:line: message";
    // any problem makes the whole file invalid (nullopt), so a reload keeps the old one.
    static std::optional<PasswordFile> load(const std::string& path,
                                            std::vector<std::string>& errors);

    // Parses file contents; `name` prefixes error messages.
    static std::optional<PasswordFile> parse(std::string_view content, const std::string& name,
                                             std::vector<std::string>& errors);

    // CPU-heavy (PBKDF2): run off the event loop. Constant-time hash comparison; an unknown
    // user costs a comparable hash computation, so timing does not reveal which users exist.
    // A password containing NUL never verifies (Mosquitto would cut it at the NUL).
    Verify verify(std::string_view user, std::string_view password) const;

    bool hasUser(std::string_view user) const;
    const std::vector<Entry>& entries() const { return entries_; }

  private:
    struct Secret {
        std::vector<unsigned char> salt;
        std::array<unsigned char, 64> hash{};
    };

    PasswordFile();
    bool matches(const Entry& entry, const Secret& secret, std::string_view password) const;

    std::vector<Entry> entries_;
    std::vector<Secret> secrets_;  // parallel to entries_
    std::map<std::string, size_t, std::less<>> byUser_;
    Entry decoyEntry_;  // what an unknown user is "verified" against
    Secret decoySecret_;
};

// A `$7$` PBKDF2-HMAC-SHA512 hash with a fresh 12-byte salt (the size every Mosquitto 2.x
// accepts). Iterations < 1 mean the default. Empty if the system RNG fails or iterations
// exceed kMaxPbkdf2Iterations.
std::string hashPassword(std::string_view password, int iterations = kDefaultPbkdf2Iterations);

// `moat passwd FILE USER`: sets USER's password, creating the file if needed. Other lines
// (users, comments) are kept as they are; the user's first line is replaced and any later
// duplicate removed, or a line is appended. Written atomically (temp file + fsync + rename) under
// an exclusive flock of the file, through a symbolic link to its target, keeping the file's mode,
// owner and group (a new file: mode 0600); see LockedRewrite.h. On failure returns false with a
// message in `error` and leaves the file as it was.
bool setPasswordInFile(const std::string& path, std::string_view user, std::string_view password,
                       std::string& error);

}  // namespace moat::policy
