#include "gateway/net/Log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include "gateway/metrics/JsonEscape.h"

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

void logf(LogLevel level, const char* fmt, ...) {
    if (level < gLevel.load(std::memory_order_relaxed)) return;
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char prefix[64];
    const int n = std::snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                tm.tm_min, tm.tm_sec, static_cast<int>(ms.count()),
                                levelName(level));
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    const int m = std::vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const size_t messageLen = m < 0 ? 0 : std::min<size_t>(m, sizeof message - 1);
    // Messages carry values a client chose (usernames, client ids, topics, addresses, Redis
    // and OpenSSL error text): whatever they hold, the record stays on its own line, which
    // starts with the timestamp, so it can never pass for a JSON audit event sharing stderr.
    thread_local std::string line;
    line.assign(prefix, n > 0 ? static_cast<size_t>(n) : 0);
    metrics::appendLogText(line, std::string_view(message, messageLen));
    line += '\n';
    // One fwrite per line: stderr is unbuffered, so lines from different threads do not mix.
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace moat::net
