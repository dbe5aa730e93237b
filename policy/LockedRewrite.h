#pragma once
// Rewriting a small configuration file (the password file of `moat passwd`) safely when it is
// a symbolic link, when it carries deliberate permissions, and when two writers race.
//
//  - A symbolic link is followed (realpath): the link stays, its target is what is replaced,
//    with the temporary file in the target's folder so the rename is atomic.
//  - The new file gets the old one's mode, owner and group (fchmod / fchown), so a root:moat
//    0640 file stays readable by the gateway's group; failing that, nothing is replaced.
//  - An exclusive flock on the target itself serialises writers: the file is read, edited and
//    replaced under the lock, so concurrent runs never lose each other's updates. A writer
//    that waited re-checks that the file it locked is still the one at the path (the winner
//    renamed a new one in place) and locks that one instead.
//  - Readers (a gateway reloading the file) see the old or the new file, never a mix.

#include <sys/types.h>

#include <functional>
#include <string>

namespace moat::policy {

// Called under the lock with the current content ("" for a file that did not exist);
// returns false (with `error`) to leave the file unchanged.
using RewriteEdit =
    std::function<bool(const std::string& current, std::string& out, std::string& error)>;

// Rewrites `path` (or creates it with `newFileMode`). False with a message in `error` on
// failure, the file then unchanged.
bool rewriteFileLocked(const std::string& path, mode_t newFileMode, const RewriteEdit& edit,
                       std::string& error, size_t maxBytes);

}  // namespace moat::policy
