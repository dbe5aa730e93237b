#pragma once
// Paths named by the configuration: resolution against the config folder, and the
// "exists and is readable" checks `moat check` promises. Contents are not parsed here
// (gateway/tls parses certificates, keys and CRLs; policy parses the password file).

#include <string>

namespace moat::config::detail {

// Absolute, lexically normal path: `path` itself when absolute, else relative to `baseDir`.
std::string resolvePath(const std::string& baseDir, const std::string& path);

// Empty when `path` is a readable file; otherwise why not ("No such file or directory",
// "is a directory", "Permission denied").
std::string unreadableReason(const std::string& path);

// Empty when `path` is a directory we may create files in; otherwise why not.
std::string unwritableDirReason(const std::string& path);

// Empty when `path` is an existing directory; otherwise why not.
std::string missingDirReason(const std::string& path);

}  // namespace moat::config::detail
