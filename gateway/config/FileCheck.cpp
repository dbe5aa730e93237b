#include "gateway/config/FileCheck.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace moat::config::detail {
namespace fs = std::filesystem;

std::string resolvePath(const std::string& baseDir, const std::string& path) {
    fs::path p(path);
    if (p.is_relative()) p = fs::path(baseDir) / p;
    return p.lexically_normal().string();
}

std::string unreadableReason(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
    if (S_ISDIR(st.st_mode)) return "is a directory";
    // Opening (rather than access()) answers for the effective user, ACLs included.
    // O_NONBLOCK keeps a FIFO from blocking the check.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return std::strerror(errno);
    ::close(fd);
    return {};
}

std::string missingDirReason(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
    if (!S_ISDIR(st.st_mode)) return "is not a directory";
    return {};
}

std::string unwritableDirReason(const std::string& path) {
    std::string reason = missingDirReason(path);
    if (!reason.empty()) return reason;
    if (::access(path.c_str(), W_OK | X_OK) != 0) return std::strerror(errno);
    return {};
}

}  // namespace moat::config::detail
