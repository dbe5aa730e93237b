#include "gateway/net/Log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/metrics/JsonEscape.h"
#include "gateway/metrics/LineBudget.h"

namespace moat::net {

namespace {
std::atomic<LogLevel> gLevel{LogLevel::Info};
const char* levelName(LogLevel l) {
    switch (l) {
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Info:
            return "info";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Error:
            return "error";
    }
    return "?";
}
}  // namespace

void setLogLevel(LogLevel level) {
    gLevel = level;
}

namespace {

constexpr uint32_t kLinesPerSitePerSecond = 20;

std::string prefixFor(LogLevel level, std::chrono::system_clock::time_point now) {
    auto secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char prefix[64];
    const int n = std::snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, static_cast<int>(ms.count()), levelName(level));
    return std::string(prefix, n > 0 ? static_cast<size_t>(n) : 0);
}

std::mutex gBudgetMutex;
metrics::LineBudget gBudget(kLinesPerSitePerSecond);

}  // namespace

void logf(LogLevel level, const char* fmt, ...) {
    if (level < gLevel.load(std::memory_order_relaxed)) return;
    // Each call site (its format string) has its own budget: client-triggered lines (all of
    // them warn or info: anomalies, accept failures under an fd flood, unusable keys) cannot
    // flood stderr nor crowd out the others. What was cut is reported with the site's format,
    // never with the values. Errors (start-up, reload) are operator-triggered and all kept.
    thread_local std::vector<metrics::LineBudget::Suppressed> ended;
    ended.clear();
    bool admitted = true;
    if (level < LogLevel::Error) {
        std::lock_guard lock(gBudgetMutex);
        admitted = gBudget.admit(fmt, std::chrono::steady_clock::now(), ended);
    }
    const auto now = std::chrono::system_clock::now();
    thread_local std::string line;
    for (const auto& s : ended) {
        line = prefixFor(LogLevel::Warn, now);
        line += "log: suppressed ";
        line += std::to_string(s.count);
        line += " lines like \"";
        metrics::appendLogText(line, s.site ? static_cast<const char*>(s.site) : "(other)");
        line += "\" in the last second\n";
        std::fwrite(line.data(), 1, line.size(), stderr);
    }
    if (!admitted) return;
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    const int m = std::vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const size_t messageLen = m < 0 ? 0 : std::min<size_t>(m, sizeof message - 1);
    // Messages carry values a client chose (usernames, client ids, topics, addresses, Redis
    // and OpenSSL error text): whatever they hold, the record stays on its own line, which
    // starts with the timestamp, so it can never pass for a JSON audit event sharing stderr.
    line = prefixFor(level, now);
    metrics::appendLogText(line, std::string_view(message, messageLen));
    line += '\n';
    // One fwrite per line: stderr is unbuffered, so lines from different threads do not mix.
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace moat::net
