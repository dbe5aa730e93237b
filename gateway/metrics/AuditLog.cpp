#include "gateway/metrics/AuditLog.h"

#include <fcntl.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "gateway/metrics/JsonEscape.h"

namespace moat::metrics {
namespace {

using std::chrono::milliseconds;

constexpr auto kWindow = std::chrono::seconds(1);
// The writer wakes at least this often to summarise drops even when no new event arrives.
constexpr auto kWriterTick = milliseconds(250);

void appendDigits(std::string& out, unsigned value, int width) {
    char buf[8];
    for (int i = width - 1; i >= 0; --i) {
        buf[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
    out.append(buf, static_cast<size_t>(width));
}

// RFC 3339, UTC, milliseconds: 2026-11-25T10:00:00.123Z
void appendTimestamp(std::string& out, std::chrono::system_clock::time_point ts) {
    const auto ms = std::chrono::duration_cast<milliseconds>(ts.time_since_epoch()).count();
    const auto floorMs = ms >= 0 ? ms : ms - 999;  // floor division for pre-1970 clocks
    const time_t seconds = static_cast<time_t>(floorMs / 1000);
    const auto millis = static_cast<unsigned>(ms - static_cast<int64_t>(seconds) * 1000);
    struct tm tm {};
    gmtime_r(&seconds, &tm);
    appendDigits(out, static_cast<unsigned>(tm.tm_year + 1900), 4);
    out += '-';
    appendDigits(out, static_cast<unsigned>(tm.tm_mon + 1), 2);
    out += '-';
    appendDigits(out, static_cast<unsigned>(tm.tm_mday), 2);
    out += 'T';
    appendDigits(out, static_cast<unsigned>(tm.tm_hour), 2);
    out += ':';
    appendDigits(out, static_cast<unsigned>(tm.tm_min), 2);
    out += ':';
    appendDigits(out, static_cast<unsigned>(tm.tm_sec), 2);
    out += '.';
    appendDigits(out, millis, 3);
    out += 'Z';
}

// The kinds a per-source summary can name; anything else is "other" (the last bit).
constexpr std::string_view kKinds[] = {"connect",      "auth_failure", "authz_denied",
                                       "rate_limited", "ban",          "protocol_error",
                                       "disconnect",   "reload",       "anomaly"};
constexpr size_t kKindCount = sizeof kKinds / sizeof kKinds[0];

uint32_t kindBit(std::string_view event) {
    for (size_t i = 0; i < kKindCount; ++i) {
        if (kKinds[i] == event) return 1u << i;
    }
    return 1u << kKindCount;
}

std::string kindList(uint32_t kinds) {
    std::string out;
    for (size_t i = 0; i <= kKindCount; ++i) {
        if ((kinds & (1u << i)) == 0) continue;
        if (!out.empty()) out += ',';
        out += i < kKindCount ? kKinds[i] : std::string_view("other");
    }
    return out;
}

uint32_t perSourceShare(uint32_t maxPerSecond) {
    if (maxPerSecond == 0) return 0;
    return std::max(maxPerSecond / 10, std::min<uint32_t>(maxPerSecond, 10));
}

void appendField(std::string& out, std::string_view key, std::string_view value) {
    out += ',';
    appendJsonString(out, key, AuditLog::kMaxFieldBytes);
    out += ':';
    appendJsonString(out, value, AuditLog::kMaxFieldBytes);
}

}  // namespace

AuditLog::AuditLog(const config::AuditConfig& config, ClockFn clock)
    : path_(config.log.empty() ? "-" : config.log),
      maxPerSecond_(config.maxEventsPerSecond),
      perSource_(perSourceShare(config.maxEventsPerSecond)),
      reserved_(config.maxEventsPerSecond / 4),
      clock_(clock ? std::move(clock) : ClockFn([] { return Clock::now(); })) {
    windowStart_ = clock_();
}

AuditLog::~AuditLog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable()) writer_.join();
    {
        std::lock_guard lock(mutex_);
        rollWindowLocked(clock_(), /*force=*/true);
    }
    drain();
    if (ownsFd_ && fd_ >= 0) ::close(fd_);
}

bool AuditLog::openFd(std::string& error, int& fd) const {
    if (path_ == "-") {
        fd = STDERR_FILENO;
        return true;
    }
    fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        error = "cannot open audit log " + path_ + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

bool AuditLog::open(std::string& error) {
    {
        std::lock_guard writeLock(writeMutex_);
        if (fd_ >= 0) return true;
        if (!openFd(error, fd_)) return false;
        ownsFd_ = path_ != "-";
    }
    writer_ = std::thread([this] { writerLoop(); });
    return true;
}

void AuditLog::log(const AuditEvent& event) {
    const auto now = clock_();
    {
        // Decide before formatting, so a flood costs a lock and a lookup per event, no more.
        std::lock_guard lock(mutex_);
        rollWindowLocked(now, false);
        if (!admitLocked(event)) return;
    }
    thread_local std::string line;
    line.clear();
    format(line, event, std::chrono::system_clock::now());
    line += '\n';
    bool wasEmpty;
    {
        std::lock_guard lock(mutex_);
        if (pending_.size() + line.size() > kMaxPendingBytes) {
            countDropLocked(Drop::QueueFull);
            return;
        }
        wasEmpty = pending_.empty();
        pending_ += line;
    }
    // The writer batches: it only needs a nudge when the batch starts.
    if (wasEmpty) wake_.notify_one();
}

std::string_view AuditLog::sourceOf(std::string_view remote) {
    if (!remote.empty() && remote.front() == '[') {
        const auto close = remote.find(']');
        return close == std::string_view::npos ? remote.substr(1) : remote.substr(1, close - 1);
    }
    const auto colon = remote.find(':');
    // One colon: "ip:port". None: a bare IPv4 address. Several: a bare IPv6 address.
    if (colon != std::string_view::npos && remote.find(':', colon + 1) == std::string_view::npos)
        return remote.substr(0, colon);
    return remote;
}

bool AuditLog::isReservedKind(std::string_view event) {
    return event == "auth_failure" || event == "ban" || event == "authz_denied" ||
           event == "reload" || event == "anomaly";
}

bool AuditLog::admitLocked(const AuditEvent& event) {
    if (maxPerSecond_ == 0) return true;
    SourceCount* source = nullptr;
    const std::string_view address = sourceOf(event.remote);
    if (!address.empty()) {
        // One lookup key per event; IPv4 and short IPv6 addresses stay in the small-string
        // buffer, so a flood does not allocate here.
        std::string key(address);
        auto it = sources_.find(key);
        if (it == sources_.end() && sources_.size() < kMaxSources)
            it = sources_.emplace(std::move(key), SourceCount{}).first;
        if (it != sources_.end()) source = &it->second;
    }
    if (source != nullptr && source->logged >= perSource_) {
        countDropLocked(Drop::RateLimit, source, event.event);
        return false;
    }
    const bool reserved = isReservedKind(event.event);
    const uint32_t budget = reserved ? maxPerSecond_ : maxPerSecond_ - reserved_;
    if (inWindow_ >= budget) {
        // The floor: an address's first event of a reserved kind in this second is written
        // whatever others spent (at most one per kind per tracked address).
        const uint32_t bit = kindBit(event.event);
        if (!reserved || source == nullptr || (source->flooredKinds & bit) != 0) {
            countDropLocked(Drop::RateLimit, source, event.event);
            return false;
        }
        source->flooredKinds |= bit;
        ++source->logged;
        return true;
    }
    ++inWindow_;
    if (source != nullptr) ++source->logged;
    return true;
}

void AuditLog::countDropLocked(Drop why, SourceCount* source, std::string_view event) {
    if (source != nullptr) {
        ++source->dropped;
        source->droppedKinds |= kindBit(event);
    } else {
        (why == Drop::RateLimit ? droppedRate_ : droppedQueue_)++;
    }
    ++suppressedTotal_;
    if (suppressedCounter_ != nullptr) suppressedCounter_->Increment();
}

void AuditLog::rollWindowLocked(Clock::time_point now, bool force) {
    if (!force && now - windowStart_ < kWindow) return;
    // One summary per flooding address (at most kMaxSources), then the anonymous remainder.
    for (const auto& [address, source] : sources_) {
        if (source.dropped > 0)
            appendSummaryLocked("rate_limit", source.dropped, address, source.droppedKinds);
    }
    if (droppedRate_ > 0) appendSummaryLocked("rate_limit", droppedRate_);
    if (droppedQueue_ > 0) appendSummaryLocked("queue_full", droppedQueue_);
    droppedRate_ = droppedQueue_ = 0;
    if (now - windowStart_ >= kWindow) {
        windowStart_ = now;
        inWindow_ = 0;
        sources_.clear();
    } else {
        for (auto& [address, source] : sources_) source.dropped = source.droppedKinds = 0;
    }
}

void AuditLog::appendSummaryLocked(std::string_view reason, uint64_t count, std::string_view remote,
                                   uint32_t kinds) {
    // Summaries bypass the byte bound: there is at most one per reason and one per tracked
    // address per second.
    const std::string events = kinds != 0 ? kindList(kinds) : std::string();
    const AuditExtra extra[] = {{"events", events}};
    AuditEvent summary{
        .event = "audit_suppressed", .remote = remote, .reason = reason, .count = count};
    if (kinds != 0) summary.extra = extra;
    format(pending_, summary, std::chrono::system_clock::now());
    pending_ += '\n';
}

void AuditLog::reopen() {
    {
        std::lock_guard lock(mutex_);
        reopenRequested_ = true;
    }
    wake_.notify_one();
}

void AuditLog::flush() {
    {
        std::lock_guard lock(mutex_);
        rollWindowLocked(clock_(), false);
    }
    drain();
}

void AuditLog::writerLoop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, kWriterTick,
                       [this] { return stopping_ || !pending_.empty() || reopenRequested_; });
        rollWindowLocked(clock_(), false);
        if (pending_.empty() && !reopenRequested_) continue;
        lock.unlock();
        drain();
        lock.lock();
    }
}

void AuditLog::drain() {
    std::lock_guard writeLock(writeMutex_);
    bool reopenNow;
    {
        std::lock_guard lock(mutex_);
        reopenNow = reopenRequested_;
        reopenRequested_ = false;
        writing_.swap(pending_);  // pending_ inherits the old batch's capacity
        pending_.clear();
    }
    if (reopenNow && path_ != "-") {
        std::string error;
        int fd = -1;
        if (openFd(error, fd)) {
            if (ownsFd_ && fd_ >= 0) ::close(fd_);
            fd_ = fd;
            ownsFd_ = true;
        } else {
            // Keep writing to the old descriptor: losing the audit trail is worse.
            std::lock_guard lock(mutex_);
            lastError_ = error;
        }
    }
    if (!writing_.empty()) writeAll(writing_);
    writing_.clear();
}

void AuditLog::writeAll(const std::string& data) {
    if (fd_ < 0) return;  // never opened: nothing to write to
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // stderr may be a non-blocking pipe shared with libuv: wait here, on the writer
            // thread, instead of spinning.
            pollfd pfd{fd_, POLLOUT, 0};
            ::poll(&pfd, 1, 1000);
        } else {
            std::lock_guard lock(mutex_);
            lastError_ = std::string("audit log write failed: ") + std::strerror(errno);
            return;
        }
    }
}

uint64_t AuditLog::suppressedTotal() const {
    std::lock_guard lock(mutex_);
    return suppressedTotal_;
}

std::string AuditLog::lastError() const {
    std::lock_guard lock(mutex_);
    return lastError_;
}

void AuditLog::format(std::string& out, const AuditEvent& event,
                      std::chrono::system_clock::time_point ts) {
    out += "{\"ts\":\"";
    appendTimestamp(out, ts);
    out += '"';
    appendField(out, "event", event.event);
    appendField(out, "listener", event.listener);
    appendField(out, "remote", event.remote);
    appendField(out, "client_id", event.clientId);
    appendField(out, "identity", event.identity);
    appendField(out, "protocol", event.protocol);
    if (event.action) appendField(out, "action", *event.action);
    if (event.topic) appendField(out, "topic", *event.topic);
    if (event.rule) appendField(out, "rule", *event.rule);
    if (event.reason) appendField(out, "reason", *event.reason);
    if (event.count) {
        out += ",\"count\":";
        out += std::to_string(*event.count);
    }
    for (const auto& extra : event.extra) appendField(out, extra.key, extra.value);
    out += '}';
}

}  // namespace moat::metrics
