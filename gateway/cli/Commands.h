#pragma once
// One function per `moat` sub-command; each returns the process exit status.

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

// "-c FILE" / "--config FILE" / "--config=FILE"; empty when missing.
std::string configPathArg(const Args& args);
// The value after `flag`, or `fallback`.
std::string flagValue(const Args& args, const std::string& flag, const std::string& fallback = "");

}  // namespace moat::cli
