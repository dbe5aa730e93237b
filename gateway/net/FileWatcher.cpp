#include "gateway/net/FileWatcher.h"

#include <map>
#include <string_view>

#include "gateway/net/Log.h"

namespace moat::net {

struct FileWatcher::DirWatch {
    uv_fs_event_t handle{};
    FileWatcher* owner = nullptr;
    std::string dir;
    std::set<std::string> names;  // basenames of interest in `dir`; "%u" stands for any text
    bool wants(const std::string& name) const;
};

FileWatcher::FileWatcher(uv_loop_t* loop, uint64_t debounceMs, std::function<void()> onChange)
    : loop_(loop), debounceMs_(debounceMs), onChange_(std::move(onChange)), timer_(new uv_timer_t) {
    uv_timer_init(loop_, timer_);
    timer_->data = this;
}

FileWatcher::~FileWatcher() {
    close();
}

void FileWatcher::watch(const std::vector<std::string>& paths) {
    std::map<std::string, std::set<std::string>> byDir;
    for (const auto& p : paths) {
        auto slash = p.rfind('/');
        if (slash == std::string::npos) continue;
        byDir[slash == 0 ? "/" : p.substr(0, slash)].insert(p.substr(slash + 1));
    }
    for (auto* d : dirs_) {
        uv_close(reinterpret_cast<uv_handle_t*>(&d->handle),
                 [](uv_handle_t* h) { delete static_cast<DirWatch*>(h->data); });
    }
    dirs_.clear();
    for (auto& [dir, names] : byDir) {
        auto* d = new DirWatch;
        d->owner = this;
        d->dir = dir;
        d->names = std::move(names);
        d->handle.data = d;
        uv_fs_event_init(loop_, &d->handle);
        int r = uv_fs_event_start(&d->handle, onEvent, dir.c_str(), 0);
        if (r != 0) {
            MOAT_LOG_WARN("cannot watch %s for changes: %s (SIGHUP still reloads)", dir.c_str(),
                          uv_strerror(r));
        }
        dirs_.push_back(d);
    }
}

void FileWatcher::close() {
    for (auto* d : dirs_) {
        uv_close(reinterpret_cast<uv_handle_t*>(&d->handle),
                 [](uv_handle_t* h) { delete static_cast<DirWatch*>(h->data); });
    }
    dirs_.clear();
    if (timer_) {
        uv_close(reinterpret_cast<uv_handle_t*>(timer_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        timer_ = nullptr;
    }
}

void FileWatcher::onEvent(uv_fs_event_t* h, const char* filename, int, int status) {
    auto* d = static_cast<DirWatch*>(h->data);
    if (status < 0 || !d->owner->timer_) return;
    // No name: the kernel could not say which entry changed, so assume ours did.
    // "..data" and friends: a Kubernetes volume swapped its contents atomically.
    std::string name = filename ? filename : "";
    if (!name.empty() && !d->wants(name) && name.rfind("..", 0) != 0) return;
    // Debounce: an editor or a rotation tool touches several files within milliseconds;
    // reload once, after things have settled.
    uv_timer_start(d->owner->timer_, onDebounce, d->owner->debounceMs_, 0);
}

bool FileWatcher::DirWatch::wants(const std::string& name) const {
    if (names.count(name)) return true;
    // Per-identity files (integrity keys `keys/%u.key`): any name of that shape.
    for (const std::string& n : names) {
        const size_t at = n.find("%u");
        if (at == std::string::npos) continue;
        const std::string_view prefix(n.data(), at), suffix(n.data() + at + 2, n.size() - at - 2);
        if (name.size() > prefix.size() + suffix.size() &&
            name.compare(0, prefix.size(), prefix) == 0 &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            return true;
    }
    return false;
}

void FileWatcher::onDebounce(uv_timer_t* t) {
    static_cast<FileWatcher*>(t->data)->onChange_();
}

}  // namespace moat::net
