#pragma once
// Shared fixtures for unit_audit: a throw-away PKI made with the openssl CLI, a clean config
// that audits without high findings, and finding lookups.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/audit/ConfigAudit.h"

namespace moat::audit::test {

// Generated once per process into a fresh temp dir (removed at exit).
struct Pki {
    std::string dir;
    std::string caCert;        // CA, valid 2 years
    std::string validCert;     // server, valid 1 year
    std::string expiringCert;  // server, expires in 10 days
    std::string expiredCert;   // server, expired in 2020
    std::string freshCrl;      // nextUpdate in 30 days
    std::string staleCrl;      // nextUpdate in 2020
    std::string garbage;       // a file that holds no PEM object
    std::string cleanPasswd;   // one $7$ line, 1000 iterations
    std::string weakPasswd;    // $6$ and low-iteration $7$ lines
};
const Pki& pki();

// Writes `content` to a new file in the PKI dir and returns its path.
std::string writeFile(const std::string& name, const std::string& content);

// One mTLS listener on 0.0.0.0:8883 with valid cert, CA and CRL; loopback backend and
// metrics; passwords in a $7$ file; a device role scoped with %u plus an operator role.
config::Config cleanConfig();

std::chrono::system_clock::time_point now();

// A copy: callers often pass the temporary result of auditConfig().
std::optional<Finding> find(const std::vector<Finding>& findings, std::string_view id);
size_t count(const std::vector<Finding>& findings, std::string_view id);
bool hasHigh(const std::vector<Finding>& findings);

}  // namespace moat::audit::test
