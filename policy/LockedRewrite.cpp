#include "policy/LockedRewrite.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace moat::policy {

namespace {

std::string errnoText() {
    return std::strerror(errno);
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

bool writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool readAll(int fd, std::string& out, size_t maxBytes, std::string& error) {
    char buf[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            error = errnoText();
            return false;
        }
        if (n == 0) return true;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > maxBytes) {
            error = "file larger than " + std::to_string(maxBytes) + " bytes";
            return false;
        }
    }
}

std::string folderOf(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// The file to replace: `path` itself, or the end of its chain of symbolic links.
bool resolveTarget(const std::string& path, std::string& target, std::string& error) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) {
            error = "cannot access " + path + ": " + errnoText();
            return false;
        }
        target = path;  // a new file
        return true;
    }
    if (!S_ISLNK(st.st_mode)) {
        target = path;
        return true;
    }
    char* resolved = ::realpath(path.c_str(), nullptr);
    if (!resolved) {
        // A dangling link: creating a file wherever it points is not what the caller asked.
        error = "cannot follow the symbolic link " + path + ": " + errnoText();
        return false;
    }
    target = resolved;
    std::free(resolved);
    return true;
}

// Writes `content` next to `target` with the given mode / owner and renames it over `target`.
bool replace(const std::string& target, std::string_view content, const struct stat& like,
             std::string& error) {
    std::string tmp = target + ".tmp.XXXXXX";
    Fd out;
    out.fd = ::mkstemp(tmp.data());
    if (out.fd < 0) {
        error = "cannot create a temporary file next to " + target + ": " + errnoText();
        return false;
    }
    auto fail = [&](const std::string& what) {
        error = what + ": " + errnoText();
        ::unlink(tmp.c_str());
        return false;
    };
    struct stat mine {};
    if (::fstat(out.fd, &mine) != 0) return fail("cannot stat " + tmp);
    // Owner and group first (a chown clears set-id bits), then the mode. Refusing is better
    // than silently handing the file to the caller: the gateway may lose read access.
    if ((mine.st_uid != like.st_uid || mine.st_gid != like.st_gid) &&
        ::fchown(out.fd, like.st_uid, like.st_gid) != 0)
        return fail("cannot keep the owner " + std::to_string(like.st_uid) + ":" +
                    std::to_string(like.st_gid) + " of " + target + " (run as its owner or root)");
    if (::fchmod(out.fd, like.st_mode & 07777) != 0) return fail("cannot set the mode of " + tmp);
    if (!writeAll(out.fd, content) || ::fsync(out.fd) != 0) return fail("cannot write " + tmp);
    const int fd = out.fd;
    out.fd = -1;
    if (::close(fd) != 0) return fail("cannot write " + tmp);
    if (::rename(tmp.c_str(), target.c_str()) != 0) return fail("cannot replace " + target);
    // Make the rename itself durable; best effort (some filesystems refuse fsync on folders).
    if (const int dfd = ::open(folderOf(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return true;
}

}  // namespace

bool rewriteFileLocked(const std::string& path, mode_t newFileMode, const RewriteEdit& edit,
                       std::string& error, size_t maxBytes) {
    std::string target;
    if (!resolveTarget(path, target, error)) return false;
    // Bounded: each retry means another writer replaced the file while we waited for it.
    for (int attempt = 0; attempt < 1000; ++attempt) {
        Fd locked;
        bool created = false;
        locked.fd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (locked.fd < 0 && errno == ENOENT) {
            locked.fd = ::open(target.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                               newFileMode);
            if (locked.fd < 0 && errno == EEXIST) continue;  // another writer created it
            created = locked.fd >= 0;
        }
        if (locked.fd < 0) {
            error = "cannot open " + target + ": " + errnoText();
            return false;
        }
        while (::flock(locked.fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                error = "cannot lock " + target + ": " + errnoText();
                return false;
            }
        }
        struct stat held {
        }, now{};
        if (::fstat(locked.fd, &held) != 0) {
            error = "cannot stat " + target + ": " + errnoText();
            return false;
        }
        if (::stat(target.c_str(), &now) != 0 || now.st_dev != held.st_dev ||
            now.st_ino != held.st_ino)
            continue;  // replaced (or removed) while we waited: lock the file there now
        if (!S_ISREG(held.st_mode)) {
            error = target + " is not a regular file";
            return false;
        }
        // From here on we hold the lock on the live file; a file we created and could not
        // fill is removed again (it was empty, nobody else had written it).
        auto undoCreate = [&] {
            if (created) ::unlink(target.c_str());
            return false;
        };
        std::string current, readError;
        if (!readAll(locked.fd, current, maxBytes, readError)) {
            error = "cannot read " + target + ": " + readError;
            return undoCreate();
        }
        std::string next;
        if (!edit(current, next, error)) return undoCreate();
        if (!replace(target, next, held, error)) return undoCreate();
        return true;  // the lock goes with `locked`, after the rename
    }
    error = "cannot lock " + target + ": it keeps being replaced";
    return false;
}

}  // namespace moat::policy
