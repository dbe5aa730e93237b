#pragma once
// Operational log (startup, shutdown, errors) on stderr, one line each, prefixed with an
// RFC 3339 timestamp. Security decisions go to the JSON audit log instead (metrics/AuditLog).
// Every line is made safe at the sink (control characters and ill-formed UTF-8 escaped, see
// metrics::appendLogText), so a value cannot start a new line; untrusted values are also
// printed quoted (metrics::quoteForLog) so where they end is unambiguous.

#include <cstdarg>

namespace moat::net {

enum class LogLevel { Debug, Info, Warn, Error };

void setLogLevel(LogLevel level);
void logf(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define MOAT_LOG_INFO(...) ::moat::net::logf(::moat::net::LogLevel::Info, __VA_ARGS__)
#define MOAT_LOG_WARN(...) ::moat::net::logf(::moat::net::LogLevel::Warn, __VA_ARGS__)
#define MOAT_LOG_ERROR(...) ::moat::net::logf(::moat::net::LogLevel::Error, __VA_ARGS__)
#define MOAT_LOG_DEBUG(...) ::moat::net::logf(::moat::net::LogLevel::Debug, __VA_ARGS__)

}  // namespace moat::net
