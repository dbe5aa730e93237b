// Password-file checks. A plain line scan (not policy::PasswordFile): the audit reports on
// weak entries even in a file the loader would refuse, and never needs the secrets.

#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>

#include "gateway/audit/Checks.h"
#include "policy/PasswordFile.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;

namespace {

// Mosquitto 2.1's PBKDF2 count; 2.0 wrote 101.
constexpr long kMinPbkdf2Iterations = 1000;
// Per check, beyond this many users one summary finding stands for the rest.
constexpr size_t kMaxUserFindings = 10;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// "$7$<iterations>$..." -> iterations, or -1 when the field is not a number.
long pbkdf2Iterations(std::string_view hash) {
    std::string_view rest = hash.substr(3);
    const size_t end = rest.find('$');
    if (end == std::string_view::npos) return -1;
    long n = -1;
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + end, n);
    if (ec != std::errc() || p != rest.data() + end) return -1;
    return n;
}

struct UserList {
    std::vector<std::string> users;
    size_t total = 0;
    void add(std::string_view user) {
        ++total;
        if (users.size() < kMaxUserFindings) users.emplace_back(user);
    }
};

}  // namespace

double measuredPbkdf2NanosPerIteration() {
    static const double perIteration = [] {
        constexpr int kIterations = 20000;  // ~10-20 ms: long enough to time, short to wait
        const auto start = std::chrono::steady_clock::now();
        (void)policy::hashPassword("moat-audit-timing", kIterations);
        const auto took = std::chrono::steady_clock::now() - start;
        return std::chrono::duration<double, std::nano>(took).count() / kIterations;
    }();
    return perIteration;
}

void auditPasswordFile(const config::Config& config, Findings& out) {
    // Measured only when there is a file to judge.
    if (config.auth.passwordFile.empty()) return;
    auditPasswordFile(config, out, measuredPbkdf2NanosPerIteration());
}

void auditPasswordFile(const config::Config& config, Findings& out, double nanosPerIteration) {
    const std::string& path = config.auth.passwordFile;
    if (path.empty()) return;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        out.push_back({Severity::High, "password-file-unreadable", "auth.password_file",
                       path + " cannot be read: no password login can succeed",
                       "create it with `moat passwd " + path + " USER`"});
        return;
    }

    UserList sha512, fewIterations, expensive;
    long mostExpensive = 0;
    std::string line;
    while (std::getline(in, line)) {
        std::string_view l = trim(line);
        if (l.empty() || l.front() == '#') continue;
        const size_t colon = l.find(':');
        if (colon == std::string_view::npos) continue;  // malformed: `moat check` reports it
        const std::string_view user = trim(l.substr(0, colon));
        const std::string_view hash = trim(l.substr(colon + 1));
        if (hash.rfind("$6$", 0) == 0) {
            sha512.add(user);
        } else if (hash.rfind("$7$", 0) == 0) {
            const long n = pbkdf2Iterations(hash);
            if (n >= 0 && n < kMinPbkdf2Iterations) fewIterations.add(user);
            if (n > 0 && n * nanosPerIteration / 1e6 > kMaxCheckMillis) {
                expensive.add(user);
                mostExpensive = std::max(mostExpensive, n);
            }
        }
    }

    for (const auto& user : sha512.users) {
        out.push_back({Severity::Medium, "weak-password-hash", "user " + user,
                       "password hash in " + path +
                           " is $6$ (a single salted SHA-512): a leaked file is cheap to "
                           "brute-force",
                       "re-set it with `moat passwd " + path + " " + user + "` ($7$ PBKDF2)"});
    }
    if (sha512.total > sha512.users.size()) {
        out.push_back({Severity::Medium, "weak-password-hash", "auth.password_file",
                       std::to_string(sha512.total - sha512.users.size()) + " more users in " +
                           path + " have $6$ hashes",
                       "re-set their passwords with `moat passwd`"});
    }
    for (const auto& user : fewIterations.users) {
        out.push_back({Severity::Low, "low-pbkdf2-iterations", "user " + user,
                       "password hash in " + path + " uses fewer than " +
                           std::to_string(kMinPbkdf2Iterations) + " PBKDF2 iterations",
                       "re-set it with `moat passwd " + path + " " + user + "`"});
    }
    // Finding 19.2: every CONNECT that names such a user (or a guess at it) holds a
    // password-check thread that long; a handful of addresses keep the pool busy.
    auto costMs = [&](long n) {
        return std::to_string(std::lround(n * nanosPerIteration / 1e6)) + " ms";
    };
    for (const auto& user : expensive.users) {
        out.push_back({Severity::Medium, "expensive-password-hash", "user " + user,
                       "password hash in " + path + " costs more than " +
                           std::to_string(int(kMaxCheckMillis)) +
                           " ms per check here: CONNECTs naming it (anyone may send them) "
                           "hold the password-check threads, so a few addresses can keep "
                           "logins waiting or refused as busy (0x89)",
                       "re-set it with `moat passwd " + path + " " + user + "` (" +
                           std::to_string(policy::kDefaultPbkdf2Iterations) +
                           " iterations), or use certificates for this identity"});
    }
    if (expensive.total > expensive.users.size()) {
        out.push_back({Severity::Medium, "expensive-password-hash", "auth.password_file",
                       std::to_string(expensive.total - expensive.users.size()) +
                           " more users in " + path + " have hashes costing more than " +
                           std::to_string(int(kMaxCheckMillis)) + " ms per check (up to " +
                           costMs(mostExpensive) + ")",
                       "re-set their passwords with `moat passwd`"});
    }
    if (fewIterations.total > fewIterations.users.size()) {
        out.push_back({Severity::Low, "low-pbkdf2-iterations", "auth.password_file",
                       std::to_string(fewIterations.total - fewIterations.users.size()) +
                           " more users in " + path + " have fewer than " +
                           std::to_string(kMinPbkdf2Iterations) + " PBKDF2 iterations",
                       "re-set their passwords with `moat passwd`"});
    }
}

}  // namespace moat::audit::detail
