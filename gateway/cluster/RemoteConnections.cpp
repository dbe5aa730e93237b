#include "gateway/cluster/RemoteConnections.h"

#include <algorithm>
#include <limits>

namespace moat::cluster {

bool RemoteConnections::touch(const std::string& replica, uint64_t nowMs) {
    auto it = replicas_.find(replica);
    if (it == replicas_.end()) {
        if (replicas_.size() >= limits_.maxReplicas) {
            ++refused_;
            return false;
        }
        it = replicas_.emplace(replica, Replica{}).first;
    }
    it->second.lastSeenMs = nowMs;
    return true;
}

bool RemoteConnections::set(const std::string& replica, const std::string& ip, uint32_t count,
                            uint64_t nowMs) {
    if (!touch(replica, nowMs)) return false;
    count = std::min(count, limits_.maxPerEntry);
    auto& conns = replicas_[replica].connections;
    auto it = conns.find(ip);
    const uint32_t old = it == conns.end() ? 0 : it->second;
    if (count == old) return true;
    if (count == 0) {
        conns.erase(it);
        --entries_;
    } else if (it != conns.end()) {
        it->second = count;
    } else {
        if (entries_ >= limits_.maxEntries) {
            ++refused_;
            return false;
        }
        conns.emplace(ip, count);
        ++entries_;
    }
    adjust(ip, old, count);
    return true;
}

void RemoteConnections::replace(const std::string& replica,
                                const std::unordered_map<std::string, uint32_t>& counts,
                                uint64_t nowMs) {
    if (!touch(replica, nowMs)) return;
    std::vector<std::string> gone;
    for (const auto& [ip, n] : replicas_[replica].connections)
        if (!counts.count(ip)) gone.push_back(ip);
    for (const auto& ip : gone) set(replica, ip, 0, nowMs);
    for (const auto& [ip, n] : counts) set(replica, ip, n, nowMs);
}

void RemoteConnections::forget(const std::string& replica) {
    auto it = replicas_.find(replica);
    if (it == replicas_.end()) return;
    for (const auto& [ip, n] : it->second.connections) adjust(ip, n, 0);
    entries_ -= it->second.connections.size();
    replicas_.erase(it);
}

void RemoteConnections::clear() {
    replicas_.clear();
    entries_ = 0;
    std::lock_guard lock(mutex_);
    byIp_.clear();
    total_ = 0;
}

std::vector<std::string> RemoteConnections::silent(uint64_t nowMs, uint64_t ttlMs) const {
    std::vector<std::string> out;
    for (const auto& [id, r] : replicas_)
        if (nowMs > r.lastSeenMs && nowMs - r.lastSeenMs > ttlMs) out.push_back(id);
    return out;
}

// Sums are 64-bit over at most maxEntries counts of at most maxPerEntry each: they cannot
// wrap; readers saturate them to 32 bits.
void RemoteConnections::adjust(const std::string& ip, uint32_t oldCount, uint32_t newCount) {
    std::lock_guard lock(mutex_);
    uint64_t& sum = byIp_[ip];
    sum = sum - std::min<uint64_t>(sum, oldCount) + newCount;
    total_ = total_ - std::min<uint64_t>(total_, oldCount) + newCount;
    if (sum == 0) byIp_.erase(ip);
}

uint32_t RemoteConnections::sumFor(std::string_view ip) const {
    std::lock_guard lock(mutex_);
    auto it = byIp_.find(std::string(ip));
    if (it == byIp_.end()) return 0;
    return static_cast<uint32_t>(
        std::min<uint64_t>(it->second, std::numeric_limits<uint32_t>::max()));
}

uint64_t RemoteConnections::total() const {
    std::lock_guard lock(mutex_);
    return total_;
}

}  // namespace moat::cluster
