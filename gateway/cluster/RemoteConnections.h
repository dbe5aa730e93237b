#pragma once
// What other replicas hold: live connections per source IP, per replica, and their sum per
// IP (what admission adds to the local count). Everything here comes from the network (the
// channel and Redis), so every table is bounded and every sum saturates: a flood of `conn`
// events with new addresses or new replica names cannot grow memory without bound, and no
// combination of counts can wrap a sum around to zero.
//
// Threading: the per-replica tables are main-loop only; the per-IP sums are read by workers
// (sumFor) under an internal mutex.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moat::cluster {

struct RemoteLimits {
    size_t maxReplicas = 256;        // other replicas tracked at once
    size_t maxEntries = 200000;      // (replica, ip) pairs over all replicas
    uint32_t maxPerEntry = 1000000;  // one replica's claim for one IP
};

class RemoteConnections {
  public:
    explicit RemoteConnections(RemoteLimits limits = {}) : limits_(limits) {}

    // Marks a replica as heard from; false when it is new and the replica table is full.
    bool touch(const std::string& replica, uint64_t nowMs);
    bool known(const std::string& replica) const { return replicas_.count(replica) != 0; }
    // Sets one replica's count for ip (0 removes it). False when refused by a bound (the
    // replica is unknown and there is no room, or a new pair would exceed maxEntries).
    bool set(const std::string& replica, const std::string& ip, uint32_t count, uint64_t nowMs);
    // Replaces everything known of a replica (its hash in Redis).
    void replace(const std::string& replica,
                 const std::unordered_map<std::string, uint32_t>& counts, uint64_t nowMs);
    void forget(const std::string& replica);
    void clear();
    // Replicas not heard from for more than ttlMs.
    std::vector<std::string> silent(uint64_t nowMs, uint64_t ttlMs) const;

    size_t replicas() const { return replicas_.size(); }
    size_t entries() const { return entries_; }
    uint64_t refused() const { return refused_; }

    // ---- any thread
    uint32_t sumFor(std::string_view ip) const;
    uint64_t total() const;

  private:
    struct Replica {
        uint64_t lastSeenMs = 0;
        std::unordered_map<std::string, uint32_t> connections;
    };
    void adjust(const std::string& ip, uint32_t oldCount, uint32_t newCount);

    RemoteLimits limits_;
    std::unordered_map<std::string, Replica> replicas_;
    size_t entries_ = 0;
    uint64_t refused_ = 0;

    mutable std::mutex mutex_;
    std::unordered_map<std::string, uint64_t> byIp_;  // sums; at most entries_ keys
    uint64_t total_ = 0;
};

}  // namespace moat::cluster
