#pragma once
// The JSON audit log of CONTRACT.md §5: one object per line for every security decision.
//
// log() is called from the worker event loops, so it never does I/O: it formats the line into
// a reused thread-local buffer and appends it to a bounded in-memory batch; a writer thread
// owns the file descriptor, writes batches with one write(2) each, and reopens the file when
// asked (SIGHUP / logrotate). A flood of events is cut at `max_events_per_second`; what is
// dropped is counted and summarised once per second as `audit_suppressed` events.
//
// The budget is shared fairly, so one noisy address cannot blind the log to everyone else:
//  - each source address (the host of `remote`) may use at most a tenth of the budget per
//    second (at least 10 events); beyond that its events are counted and summarised in one
//    `audit_suppressed` event per address per second (`remote` = the address, `count`, and
//    `events` = which kinds were dropped);
//  - a quarter of the budget is reserved for the events an operator must not miss: auth
//    failures, bans, authorisation denials, reloads and anomalies; and since any device can
//    produce authorisation denials at will, the first event of each such kind from each
//    address in a second is written even when the budget is spent (many flooding addresses
//    cannot hide another address's first denial or failed login; bounded by the table);
//  - the per-address table is bounded (kMaxSources per second); addresses beyond it, and
//    events with no address, only meet the global budget and are summarised anonymously.
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
#include <unordered_map>

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
    // Distinct source addresses tracked per one-second window (the bound of the per-source
    // table, and of the per-source summaries written per second).
    static constexpr size_t kMaxSources = 1024;

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
    // The per-second share of one source address, and the part of the budget that only the
    // reserved kinds (auth_failure, ban, authz_denied, reload, anomaly) may use.
    uint32_t perSourceBudget() const { return perSource_; }
    uint32_t reservedBudget() const { return reserved_; }
    // The address part of `remote` ("ip:port", "[v6]:port", a bare address): the key of the
    // per-source budget. Exposed for tests.
    static std::string_view sourceOf(std::string_view remote);
    static bool isReservedKind(std::string_view event);
    // Last open/reopen/write error, empty if none (the writer cannot log its own failures).
    std::string lastError() const;

    // One line without the trailing newline; exposed for tests.
    static void format(std::string& out, const AuditEvent& event,
                       std::chrono::system_clock::time_point ts);

  private:
    enum class Drop { RateLimit, QueueFull };
    void writerLoop();
    void drain();
    struct SourceCount {
        uint32_t logged = 0;
        uint64_t dropped = 0;
        uint32_t droppedKinds = 0;  // bit i = kKinds[i] (last bit: any other kind)
        uint32_t flooredKinds = 0;  // reserved kinds already written past the budget
    };
    bool admitLocked(const AuditEvent& event);
    void rollWindowLocked(Clock::time_point now, bool force);
    void appendSummaryLocked(std::string_view reason, uint64_t count, std::string_view remote = {},
                             uint32_t kinds = 0);
    void countDropLocked(Drop why, SourceCount* source = nullptr, std::string_view event = {});
    bool openFd(std::string& error, int& fd) const;
    void writeAll(const std::string& data);

    const std::string path_;  // "-" = stderr
    const uint32_t maxPerSecond_;
    const uint32_t perSource_;  // 0 = unlimited
    const uint32_t reserved_;
    const ClockFn clock_;
    prometheus::Counter* suppressedCounter_ = nullptr;

    mutable std::mutex mutex_;  // guards everything below up to writeMutex_
    std::condition_variable wake_;
    std::string pending_;  // formatted lines waiting for the writer
    Clock::time_point windowStart_{};
    uint32_t inWindow_ = 0;
    std::unordered_map<std::string, SourceCount> sources_;  // this window's, <= kMaxSources
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
