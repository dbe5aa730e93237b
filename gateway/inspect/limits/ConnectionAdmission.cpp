#include "gateway/inspect/limits/ConnectionAdmission.h"

#include <arpa/inet.h>

#include <cstring>

namespace moat::inspect {

const char* admissionName(Admission a) {
    switch (a) {
        case Admission::Accepted:
            return "accepted";
        case Admission::LimitedTotal:
            return "max_connections";
        case Admission::LimitedPerIp:
            return "max_connections_per_ip";
        case Admission::LimitedRate:
            return "connection_rate";
        case Admission::Banned:
            return "banned";
    }
    return "unknown";
}

ConnectionAdmission::ConnectionAdmission(const config::LimitsConfig& limits, SharedCounter* total,
                                         size_t maxTrackedIps)
    : limits_(limits), total_(total), maxTrackedIps_(maxTrackedIps > 0 ? maxTrackedIps : 1) {}

ConnectionAdmission::~ConnectionAdmission() {
    // Give back the shared slots of connections never released, so a worker that is torn
    // down does not leak global capacity.
    if (total_ != nullptr) {
        for (size_t i = 0; i < active_; ++i) total_->release();
    }
}

Admission ConnectionAdmission::admit(std::string_view ip, SteadyTime now, const BanLookup& bans,
                                     uint32_t elsewhere) {
    if (bans.isIpBanned(ip, now)) return Admission::Banned;

    IpState& state = findOrInsert(ip, now);
    if (!state.rate.tryTake(1, now)) return Admission::LimitedRate;
    if (limits_.maxConnectionsPerIp != 0 &&
        uint64_t(state.active) + elsewhere >= limits_.maxConnectionsPerIp) {
        return Admission::LimitedPerIp;
    }
    if (total_ != nullptr) {
        if (!total_->tryAcquire(limits_.maxConnections)) return Admission::LimitedTotal;
    } else if (limits_.maxConnections != 0 && active_ >= limits_.maxConnections) {
        return Admission::LimitedTotal;
    }
    ++state.active;
    ++active_;
    return Admission::Accepted;
}

void ConnectionAdmission::chargeElsewhere(std::string_view ip, uint32_t count, SteadyTime now) {
    if (count == 0 || limits_.connectionRatePerIp.perSecond <= 0) return;
    IpState& state = findOrInsert(ip, now);
    for (uint32_t i = 0; i < count; ++i)
        if (!state.rate.tryTake(1, now)) break;
}

void ConnectionAdmission::release(std::string_view ip) {
    auto it = ips_.find(ip);
    // Unknown or idle: a double release. Ignoring it keeps the counts from going negative.
    if (it == ips_.end() || it->second.active == 0) return;
    --it->second.active;
    --active_;
    if (total_ != nullptr) total_->release();
    if (it->second.active == 0 && it->second.rate.unlimited()) ips_.erase(it);
}

ConnectionAdmission::IpState& ConnectionAdmission::findOrInsert(std::string_view ip,
                                                                SteadyTime now) {
    if (auto it = ips_.find(ip); it != ips_.end()) return it->second;
    if (ips_.size() >= maxTrackedIps_) {
        sweep(now);
        if (ips_.size() >= maxTrackedIps_) evictIdle();
    }
    IpState state;
    state.rate = TokenBucket(limits_.connectionRatePerIp.perSecond);
    return ips_.emplace(std::string(ip), state).first->second;
}

// Under pressure (many source addresses), forget the rate history of idle addresses until a
// quarter of the table is free: the walk is amortised over the inserts that follow. Entries
// with live connections stay; they are bounded by max_connections.
void ConnectionAdmission::evictIdle() {
    const size_t target = maxTrackedIps_ / 4 * 3;
    for (auto it = ips_.begin(); it != ips_.end() && ips_.size() > target;) {
        if (it->second.active == 0) {
            it = ips_.erase(it);
        } else {
            ++it;
        }
    }
}

void ConnectionAdmission::updateLimits(const config::LimitsConfig& limits) {
    limits_ = limits;
    for (auto& [ip, state] : ips_) state.rate.reconfigure(limits_.connectionRatePerIp.perSecond);
}

void ConnectionAdmission::sweep(SteadyTime now) {
    for (auto it = ips_.begin(); it != ips_.end();) {
        if (it->second.active == 0 && it->second.rate.full(now)) {
            it = ips_.erase(it);
        } else {
            ++it;
        }
    }
}

std::string ipLimitKey(std::string_view ip) {
    char text[INET6_ADDRSTRLEN + 1];
    // An embedded NUL would let inet_pton() parse a prefix of the string.
    if (ip.empty() || ip.size() >= sizeof(text) || ip.find('\0') != std::string_view::npos) {
        return std::string(ip);
    }
    std::memcpy(text, ip.data(), ip.size());
    text[ip.size()] = '\0';

    unsigned char addr[16];
    if (inet_pton(AF_INET6, text, addr) != 1) return std::string(ip);  // IPv4 or not an address

    static constexpr unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char out[INET6_ADDRSTRLEN];
    if (std::memcmp(addr, kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
        if (inet_ntop(AF_INET, addr + 12, out, sizeof(out)) == nullptr) return std::string(ip);
        return out;
    }
    std::memset(addr + 8, 0, 8);
    if (inet_ntop(AF_INET6, addr, out, sizeof(out)) == nullptr) return std::string(ip);
    return std::string(out) + "/64";
}

}  // namespace moat::inspect
