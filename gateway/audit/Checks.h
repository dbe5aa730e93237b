#pragma once
// Internal: the individual check groups behind auditConfig(). Each appends its findings;
// none throws, and a file that cannot be read is itself a finding, never an error.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/audit/Finding.h"
#include "gateway/config/Config.h"

namespace moat::audit::detail {

// Listeners: plaintext, TLS version, weak ciphers, client authentication, CRL presence.
void auditListeners(const config::Config& config, Findings& out);
// Roles and users: broad filters, shared placeholder-free rules, unknown / unused roles.
void auditPolicy(const config::Config& config, Findings& out);
// anonymous, limits, bans, check_deliveries, metrics and backend exposure.
void auditSettings(const config::Config& config, Findings& out);
// auth.token: short HMAC secrets, no audience / issuer / max_lifetime, HS* next to public
// keys, token identities in the certificates' namespace.
void auditToken(const config::Config& config, Findings& out);
// The cluster's trust: unsigned events and records (no key_file), plaintext Redis.
void auditClusterTrust(const config::Config& config, Findings& out);
// Certificates and CRLs named by the listeners (reads them with OpenSSL).
void auditTlsFiles(const config::Config& config, std::chrono::system_clock::time_point now,
                   Findings& out);
// The password file: weak `$6$` hashes, low PBKDF2 iteration counts, and iteration counts so
// high that one check costs more than kMaxCheckMillis on this machine (measured: one hash).
void auditPasswordFile(const config::Config& config, Findings& out);
// The same with the cost of one PBKDF2-SHA512 iteration given (tests), in nanoseconds.
void auditPasswordFile(const config::Config& config, Findings& out, double nanosPerIteration);
// One PBKDF2-SHA512 hash timed here, per iteration (ns); measured once per process.
double measuredPbkdf2NanosPerIteration();
inline constexpr double kMaxCheckMillis = 50;

// A weakness found in a TLS 1.2 cipher string.
struct CipherWeakness {
    Finding::Severity severity;
    std::string suite;   // what the string names or expands to: "RC4", "ECDHE-RSA-AES128-SHA"
    std::string reason;  // "RC4", "CBC with SHA-1 MAC", "anonymous key exchange", ...
};
// Both what the string names explicitly (even suites this OpenSSL build lacks) and what it
// expands to (`ALL`, `DEFAULT`, `COMPLEMENTOFALL` hide weak suites). Deduplicated.
std::vector<CipherWeakness> weakCiphers(std::string_view cipherList);

// 127.0.0.0/8, ::1, ::ffff:127.x.x.x and "localhost". Wildcards ("0.0.0.0", "::") are not.
bool isLoopbackHost(std::string_view host);

// "host:port" / "[v6]:port" without depending on moat_config's implementation.
std::string describeHostPort(const config::HostPort& hp);

}  // namespace moat::audit::detail
