#include "gateway/metrics/AnomalyDetector.h"

#include <algorithm>

namespace moat::metrics {
namespace {

std::string subject(std::string_view key, std::string_view value) {
    std::string s;
    s.reserve(key.size() + 1 + value.size());
    s.append(key).append("=").append(value);
    return s;
}

}  // namespace

AnomalyDetector::AnomalyDetector(const config::AnomalyConfig& config, size_t maxTracked)
    : window_(std::max<Clock::duration>(config.window, std::chrono::milliseconds(1))),
      authFailures_(config.authFailures),
      connectionStorm_(config.connectionStorm),
      authByIp_(maxTracked),
      authByIdentity_(maxTracked),
      connectionsByIp_(maxTracked) {}

std::optional<uint64_t> AnomalyDetector::hit(CountTable& table, std::string_view key,
                                             uint32_t threshold, time_point now) const {
    WindowCount& c = table.touch(key, [now] { return WindowCount{.bucketStart = now}; });
    const auto elapsed = now - c.bucketStart;
    if (elapsed >= 2 * window_) {
        c = WindowCount{.bucketStart = now, .lastRaised = c.lastRaised};
    } else if (elapsed >= window_) {
        c.previous = c.current;
        c.current = 0;
        c.bucketStart += window_;
    }
    c.lastSeen = now;
    if (c.current < UINT32_MAX) ++c.current;
    if (threshold == 0) return std::nullopt;  // detection disabled

    const double overlap = 1.0 - std::chrono::duration<double>(now - c.bucketStart) /
                                     std::chrono::duration<double>(window_);
    const auto estimate = static_cast<uint64_t>(c.current + c.previous * overlap);
    if (estimate < threshold) return std::nullopt;
    if (c.lastRaised && now - *c.lastRaised < window_) return std::nullopt;
    c.lastRaised = now;
    return estimate;
}

std::optional<Anomaly> AnomalyDetector::onAuthFailure(std::string_view ip,
                                                      std::string_view identity, time_point now) {
    const auto byIp = hit(authByIp_, ip, authFailures_, now);
    std::optional<uint64_t> byIdentity;
    if (!identity.empty()) byIdentity = hit(authByIdentity_, identity, authFailures_, now);
    if (byIp && byIdentity) {
        return Anomaly{"auth_failures", subject("ip", ip) + "," + subject("identity", identity),
                       std::max(*byIp, *byIdentity)};
    }
    if (byIp) return Anomaly{"auth_failures", subject("ip", ip), *byIp};
    if (byIdentity) return Anomaly{"auth_failures", subject("identity", identity), *byIdentity};
    return std::nullopt;
}

std::optional<Anomaly> AnomalyDetector::onConnection(std::string_view ip, time_point now) {
    if (auto count = hit(connectionsByIp_, ip, connectionStorm_, now)) {
        return Anomaly{"connection_storm", subject("ip", ip), *count};
    }
    return std::nullopt;
}

void AnomalyDetector::sweep(time_point now) {
    auto stale = [&](const auto& entry) { return idle(entry.lastSeen, now); };
    authByIp_.evictWhile(stale);
    authByIdentity_.evictWhile(stale);
    connectionsByIp_.evictWhile(stale);
}

AnomalyDetector::Sizes AnomalyDetector::sizes() const {
    return {authByIp_.size(), authByIdentity_.size(), connectionsByIp_.size()};
}

}  // namespace moat::metrics
