#pragma once
// The JSON audit log of CONTRACT.md §5: one object per line for every security decision.
//
// log() is called from the worker event loops, so it never does I/O: it formats the line into
// a reused thread-local buffer and appends it to a bounded in-memory batch; a writer thread
// owns the file descriptor, writes batches with one write(2) each, and reopens the file when
// asked (SIGHUP / logrotate). A flood of events is cut at `max_events_per_second`; what is
// dropped is counted and summarised once per second as an `audit_suppressed` event.
//
// Thread-safe: any number of threads may call log(); reopen() and flush() too.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "gateway/config/Config.h"

namespace prometheus {
class Counter;
}

namespace moat::metrics {

struct AuditExtra {
    std::string_view key;  // must not repeat a standard field name
    std::string_view value;
};

// Everything is borrowed: the event only needs to live for the duration of log().
// Never put a password (or any secret) in an event.
struct AuditEvent {
    std::string_view event;     // connect | auth_failure | authz_denied | rate_limited | ban |
                                // protocol_error | disconnect | reload | anomaly | …
    std::string_view listener;  // listener name ("" when not tied to one, e.g. reload)
    std::string_view remote;    // "ip:port" / "[v6]:port"
    std::string_view clientId;
    std::string_view identity;
    std::string_view protocol;  // "3.1" | "3.1.1" | "5.0" | "" before CONNECT
    std::optional<std::string_view> action;
    std::optional<std::string_view> topic;
    std::optional<std::string_view> rule;
    std::optional<std::string_view> reason;
    std::optional<uint64_t> count;
    std::span<const AuditExtra> extra;  // e.g. std::array<AuditExtra, 2>{{…}}
};

class AuditLog {
public:
    using Clock = std::chrono::steady_clock;
    using ClockFn = std::function<Clock::time_point()>;

    // Bound on formatted-but-unwritten bytes: if the disk stalls, events are dropped (and
    // counted) rather than growing memory without limit.
    static constexpr size_t kMaxPendingBytes = 4 * 1024 * 1024;
    // Untrusted strings (topics can be 64 KiB) are cut so one line stays reasonable.
    static constexpr size_t kMaxFieldBytes = 1024;

    // `clock` drives the rate limit's one-second windows (tests pass a fake one). The `ts`
    // field always uses the real wall clock. max_events_per_second == 0 means unlimited.
    explicit AuditLog(const config::AuditConfig& config, ClockFn clock = {});
    ~AuditLog();  // drains everything queued, writes a final summary, closes the file
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // Opens the file (append mode, created 0640) or selects stderr, and starts the writer.
    bool open(std::string& error);

    void log(const AuditEvent& event);

    // Ask the writer to reopen the file before its next write (logrotate moved it away).
    // Cheap and non-blocking: call it from the loop's SIGHUP handler (not from a raw signal
    // handler: it notifies a condition variable).
    void reopen();

    // Writes everything queued so far on the calling thread, after rolling the rate-limit
    // window if it is due. Shutdown path and test hook.
    void flush();

    // Also count suppressed events in this Prometheus counter (moat_audit_events_suppressed_total).
    void setSuppressedCounter(prometheus::Counter* counter) { suppressedCounter_ = counter; }
    uint64_t suppressedTotal() const;
    // Last open/reopen/write error, empty if none (the writer cannot log its own failures).
    std::string lastError() const;

    // One line without the trailing newline; exposed for tests.
    static void format(std::string& out, const AuditEvent& event,
                       std::chrono::system_clock::time_point ts);

private:
    enum class Drop { RateLimit, QueueFull };
    void writerLoop();
    void drain();
    void rollWindowLocked(Clock::time_point now, bool force);
    void appendSummaryLocked(std::string_view reason, uint64_t count);
    void countDropLocked(Drop why);
    bool openFd(std::string& error, int& fd) const;
    void writeAll(const std::string& data);

    const std::string path_;  // "-" = stderr
    const uint32_t maxPerSecond_;
    const ClockFn clock_;
    prometheus::Counter* suppressedCounter_ = nullptr;

    mutable std::mutex mutex_;  // guards everything below up to writeMutex_
    std::condition_variable wake_;
    std::string pending_;       // formatted lines waiting for the writer
    Clock::time_point windowStart_{};
    uint32_t inWindow_ = 0;
    uint64_t droppedRate_ = 0;  // in the current window, not yet summarised
    uint64_t droppedQueue_ = 0;
    uint64_t suppressedTotal_ = 0;
    bool reopenRequested_ = false;
    bool stopping_ = false;
    std::string lastError_;

    std::mutex writeMutex_;  // taken before mutex_; serialises writers and owns the fd
    int fd_ = -1;
    bool ownsFd_ = false;
    std::string writing_;  // batch being written; keeps its capacity across batches
    std::thread writer_;
};

}  // namespace moat::metrics
