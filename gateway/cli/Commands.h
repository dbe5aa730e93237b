#pragma once
// One function per `moat` sub-command; each returns the process exit status.

#include <cstdint>
#include <string>
#include <vector>

namespace moat::cli {

using Args = std::vector<std::string>;

int runCommand(const Args& args);
int checkCommand(const Args& args);
int explainCommand(const Args& args);
int auditCommand(const Args& args);
int passwdCommand(const Args& args);
int versionCommand(const Args& args);
int healthCommand(const Args& args);
int signCommand(const Args& args);
int importCommand(const Args& args);
int ownersCommand(const Args& args);

// HTTP/1.0 request to the gateway's own metrics port: the status (-1: unreachable), and the
// body when `body` is given. `probeHost` maps a wildcard bind to loopback.
std::string probeHost(const std::string& host);
int localHttpRequest(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& path, std::string* body);

// "-c FILE" / "--config FILE" / "--config=FILE"; empty when missing.
std::string configPathArg(const Args& args);
// The value after `flag`, or `fallback`.
std::string flagValue(const Args& args, const std::string& flag, const std::string& fallback = "");

}  // namespace moat::cli
