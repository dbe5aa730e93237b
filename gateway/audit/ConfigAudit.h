#pragma once
// `moat audit`: reviews a loaded configuration the way a security auditor would
// (CONTRACT.md §6). Reads the files the config names (certificates, CRLs, the password
// file) but opens no socket and changes nothing.
//
// Findings come out ordered by severity (high first), then in check order, so the output
// is stable for a given config and `now`.

#include <chrono>
#include <string>
#include <vector>

#include "gateway/audit/Finding.h"
#include "gateway/config/Config.h"

namespace moat::audit {

// `now` decides certificate / CRL expiry (injected so tests need no clock games).
std::vector<Finding> auditConfig(const config::Config& config,
                                 std::chrono::system_clock::time_point now);

// One finding per line: `severity  id  subject: message (fix: ...)`. Empty when no findings.
std::string formatText(const std::vector<Finding>& findings);

// A JSON array of {"severity","id","subject","message","fix"} objects, newline-terminated.
std::string formatJson(const std::vector<Finding>& findings);

}  // namespace moat::audit
