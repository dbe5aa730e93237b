#include "gateway/net/Log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

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
    char line[2048];
    int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, static_cast<int>(ms.count()), levelName(level));
    va_list ap;
    va_start(ap, fmt);
    int m = std::vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    size_t len = n + (m < 0 ? 0 : std::min<size_t>(m, sizeof line - n - 2));
    line[len++] = '\n';
    // One fwrite per line: stderr is unbuffered, so lines from different threads do not mix.
    std::fwrite(line, 1, len, stderr);
}

}  // namespace moat::net
