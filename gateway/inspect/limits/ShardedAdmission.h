#pragma once
// ConnectionAdmission for all workers at once. Per-IP limits are per process (CONTRACT §2
// `limits:`), and SO_REUSEPORT hands one address's connections to every worker, so the
// decision at accept needs one view of the address, taken synchronously: a refused connection
// must not get its TLS handshake first. What can go is the single lock: addresses are split
// over kShards shards by a keyed hash, each shard its own ConnectionAdmission behind its own
// mutex. A connection flood from many addresses spreads over the shards; only accepts from
// one address (or addresses in one shard) wait for each other, for one hash lookup and a
// token-bucket update. `max_connections` stays exact across shards through the SharedCounter
// (lock-free).

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "gateway/config/Config.h"
#include "gateway/inspect/limits/ConnectionAdmission.h"
#include "gateway/inspect/limits/KeyedHash.h"
#include "gateway/inspect/limits/SharedCounter.h"

namespace moat::inspect {

class ShardedAdmission {
  public:
    static constexpr size_t kShards = 16;

    // `total` (for max_connections) must outlive this object; without one, an own counter.
    explicit ShardedAdmission(const config::LimitsConfig& limits, SharedCounter* total = nullptr,
                              size_t maxTrackedIps = 65536)
        : total_(total ? total : &ownTotal_) {
        const size_t perShard = (maxTrackedIps + kShards - 1) / kShards;
        for (auto& s : shards_)
            s.admission = std::make_unique<ConnectionAdmission>(limits, total_, perShard);
    }

    // As ConnectionAdmission::admit; thread-safe.
    Admission admit(std::string_view ip, SteadyTime now, const BanLookup& bans,
                    uint32_t elsewhere = 0) {
        Shard& s = shard(ip);
        std::lock_guard lock(s.mutex);
        return s.admission->admit(ip, now, bans, elsewhere);
    }
    void chargeElsewhere(std::string_view ip, uint32_t count, SteadyTime now) {
        Shard& s = shard(ip);
        std::lock_guard lock(s.mutex);
        s.admission->chargeElsewhere(ip, count, now);
    }
    void release(std::string_view ip) {
        Shard& s = shard(ip);
        std::lock_guard lock(s.mutex);
        s.admission->release(ip);
    }
    void updateLimits(const config::LimitsConfig& limits) {
        for (auto& s : shards_) {
            std::lock_guard lock(s.mutex);
            s.admission->updateLimits(limits);
        }
    }
    void sweep(SteadyTime now) {
        for (auto& s : shards_) {
            std::lock_guard lock(s.mutex);
            s.admission->sweep(now);
        }
    }
    size_t active() {
        size_t n = 0;
        for (auto& s : shards_) {
            std::lock_guard lock(s.mutex);
            n += s.admission->active();
        }
        return n;
    }
    size_t trackedIps() {
        size_t n = 0;
        for (auto& s : shards_) {
            std::lock_guard lock(s.mutex);
            n += s.admission->trackedIps();
        }
        return n;
    }

  private:
    struct alignas(64) Shard {  // own cache line: shards do not slow each other down
        std::mutex mutex;
        std::unique_ptr<ConnectionAdmission> admission;
    };
    // Keyed: a client cannot pick addresses that all land in one shard on purpose.
    Shard& shard(std::string_view ip) { return shards_[KeyedHash{}(ip) % kShards]; }

    SharedCounter ownTotal_;
    SharedCounter* total_;
    std::array<Shard, kShards> shards_;
};

}  // namespace moat::inspect
