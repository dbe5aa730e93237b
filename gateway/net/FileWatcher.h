#pragma once
// Watches the files a configuration names (config, certificates, keys, CA, CRL, password
// file) and calls back, debounced, when any of them changes: cert-manager style rotation
// without anyone sending SIGHUP.
//
// Parent directories are watched rather than the files themselves, because rotation tools
// replace files atomically (write a temp file, rename it over the old one) and Kubernetes
// swaps a `..data` symlink inside Secret/ConfigMap volumes; a watch on the old inode would
// see neither. Events for other names in those directories (e.g. an audit log written next to
// the config) are ignored. Runs on the main loop only.

#include <uv.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace moat::net {

class FileWatcher {
  public:
    FileWatcher(uv_loop_t* loop, uint64_t debounceMs, std::function<void()> onChange);
    ~FileWatcher();
    FileWatcher(const FileWatcher&) = delete;
    FileWatcher& operator=(const FileWatcher&) = delete;

    // Replaces the watched set (after every successful reload: the new config may name
    // other files). Paths are absolute; "%u" in a file name (not in a folder) matches any
    // non-empty text there, for per-identity files such as integrity keys `keys/%u.key`.
    void watch(const std::vector<std::string>& paths);
    // Closes every handle (before the loop ends).
    void close();

  private:
    struct DirWatch;
    static void onEvent(uv_fs_event_t* h, const char* filename, int events, int status);
    static void onDebounce(uv_timer_t* t);

    uv_loop_t* loop_;
    uint64_t debounceMs_;
    std::function<void()> onChange_;
    std::vector<DirWatch*> dirs_;  // owned; freed in their close callbacks
    uv_timer_t* timer_;            // heap: freed in its close callback
};

}  // namespace moat::net
