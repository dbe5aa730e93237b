#pragma once
// Temporary bans after repeated authentication failures (CONTRACT.md §2 `bans:`).
//
// `auth_failures` failures within `window` from one source IP, or for one identity, ban that
// subject for `duration`. Each repeat ban of a subject doubles the duration, up to
// `max_duration`; the repeat count is remembered for max(24 h, 4 × max_duration) after a ban
// ends. Pure bookkeeping with an injected clock; memory is bounded (see BanTableLimits): a
// table full of active bans makes room by dropping the ban that ends soonest, so a flood of
// (possibly forged) bans can never stop new attackers from being banned. Active bans are
// indexed by their end, which also makes the moat_bans_active count O(1) (amortised).
//
// Threading: BanTable itself is not synchronised. The gateway shares one table across
// workers through SharedBanTable: the ban checks at accept and at CONNECT are lock-free while
// no ban is active (one atomic load), and readers share the lock while bans are active;
// failures and new bans take it exclusively (each critical section is one hash lookup).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/inspect/limits/KeyedHash.h"
#include "gateway/inspect/limits/TokenBucket.h"

namespace moat::inspect {

struct Ban {
    enum Kind { Ip, Identity };
    Kind kind = Ip;
    std::string subject;  // the IP address or the identity
    std::chrono::milliseconds duration{0};
    SteadyTime until{};
    bool adopted = false;  // decided by another replica (never shared back)
};

// The bans one failure triggered: the source IP, the identity, both, or neither.
struct BanDecision {
    std::optional<Ban> ip;
    std::optional<Ban> identity;
    explicit operator bool() const { return ip.has_value() || identity.has_value(); }
};

// What the accept path needs to know; implemented by BanTable and SharedBanTable.
class BanLookup {
  public:
    virtual ~BanLookup() = default;
    virtual bool isIpBanned(std::string_view ip, SteadyTime now) const = 0;
    virtual bool isIdentityBanned(std::string_view identity, SteadyTime now) const = 0;
};

struct BanTableLimits {
    size_t maxSubjects = 100000;           // per kind (IPs, identities)
    size_t maxKeyBytes = 8 * 1024 * 1024;  // per kind: MQTT usernames may be 64 KiB long
    size_t maxSubjectLength = 1024;        // longer identities are not tracked (IP still is)
};

class BanTable : public BanLookup {
  public:
    explicit BanTable(const config::BansConfig& config, BanTableLimits limits = {});

    // Records a failed authentication from `ip` for `identity` (empty when unknown). Returns
    // the bans this failure triggered. Failures of a subject that is already banned are
    // ignored: they cannot extend the ban. auth_failures == 0 disables banning.
    BanDecision recordAuthFailure(std::string_view ip, std::string_view identity, SteadyTime now);

    bool isIpBanned(std::string_view ip, SteadyTime now) const override;
    bool isIdentityBanned(std::string_view identity, SteadyTime now) const override;
    // The active ban of a subject (for logs and CONNACK decisions), if any.
    std::optional<Ban> activeBan(Ban::Kind kind, std::string_view subject, SteadyTime now) const;

    size_t activeBans(SteadyTime now) const;  // the moat_bans_active gauge; O(1) amortised
    // No ban of either kind is active at or after this time (a bound, not exact: a ban
    // evicted or already ended may still hold it up). SteadyTime{} when no ban was ever set.
    SteadyTime latestBanEnd() const;
    size_t trackedSubjects() const { return ips_.map.size() + identities_.map.size(); }
    // Failures that could not be recorded (a subject too long to track).
    uint64_t untrackedFailures() const { return untracked_; }
    // Active bans dropped to make room for a new subject in a full table.
    uint64_t evictedBans() const { return evictedBans_; }

    // Bans a subject now, as if its failures had reached the threshold (the cluster's shared
    // count did): same doubling, same strike memory. Nothing when it is already banned.
    std::optional<Ban> impose(Ban::Kind kind, std::string_view subject, SteadyTime now);
    // Adopts a ban decided elsewhere (another replica) ending at `until`; an active ban is
    // only ever extended. Counts as a strike. False when nothing changed (or untrackable).
    // Clamped to this replica's policy (max(duration, max_duration)): a peer — or whoever
    // can write to the cluster's Redis — cannot ban for longer than a local ban could last.
    bool adopt(Ban::Kind kind, std::string_view subject, std::chrono::milliseconds duration,
               SteadyTime until, SteadyTime now);
    // Every active ban (to share them after a reconnect to the cluster: only those with
    // adopted == false, so a ban deleted from Redis is not brought back by its adopters).
    std::vector<Ban> activeBanList(SteadyTime now) const;

    // Drops subjects that carry no information any more. Call periodically (e.g. every 10 s).
    void sweep(SteadyTime now);
    // New thresholds apply from the next failure; active bans keep their end time.
    void updateConfig(const config::BansConfig& config);

  private:
    struct Subject {
        std::vector<SteadyTime> failures;       // within the window, oldest first, < auth_failures
        SteadyTime bannedUntil{};               // banned while now < bannedUntil
        SteadyTime forgetAt{};                  // strikes are forgotten after this
        std::chrono::milliseconds duration{0};  // of the latest ban
        uint32_t strikes = 0;                   // bans so far (drives the doubling)
        bool hasBan = false;                    // bannedUntil is meaningful
        bool adopted = false;                   // the latest ban came from another replica
        bool indexed = false;                   // {bannedUntil, this} is in Side::expiries
        const std::string* key = nullptr;       // its key in the map (nodes are stable)
    };
    using Map = std::unordered_map<std::string, Subject, KeyedHash, std::equal_to<>>;
    // Bans by end time: the soonest first. Holds every ban that may still be active; ended
    // ones are dropped lazily (pruneEnded), so it is mutable for the const counters.
    using ExpiryIndex = std::set<std::pair<SteadyTime, Subject*>>;
    struct Side {
        Map map;
        size_t keyBytes = 0;
        mutable ExpiryIndex expiries;
    };

    std::optional<Ban> recordOn(Side& side, Ban::Kind kind, std::string_view key, SteadyTime now);
    Ban banSubject(Subject& s, Ban::Kind kind, std::string_view key, SteadyTime now);
    uint32_t strike(Subject& s, SteadyTime now);  // returns the strikes before this one
    void setBan(Ban::Kind kind, Subject& s, std::chrono::milliseconds duration, SteadyTime until);
    Side& side(Ban::Kind kind) { return kind == Ban::Ip ? ips_ : identities_; }
    // ---- capacity: the expiry index, eviction, the active count
    void indexBan(Side& side, Subject& s);
    void unindexBan(Side& side, Subject& s);
    void erase(Side& side, Map::iterator it);
    static void pruneEnded(const Side& side, SteadyTime now);
    size_t activeOn(const Side& side, SteadyTime now) const;
    // Frees room for one more key: forgotten subjects first (when enough of them to be worth
    // a walk), then the active bans that end soonest.
    void makeRoom(Side& side, size_t extraKeyBytes, SteadyTime now);
    bool evictSoonestBan(Side& side);
    // The longest ban this policy can impose; adopted bans are held to it.
    std::chrono::milliseconds longestBan() const;
    // The subject's entry for impose/adopt (null: not trackable; counted when the table is full).
    Subject* track(Ban::Kind kind, std::string_view subject, SteadyTime now);
    Subject* findOrInsert(Side& side, std::string_view key, SteadyTime now);
    void sweepSide(Side& side, SteadyTime now);
    void evictUnbanned(Side& side, SteadyTime now);
    bool full(const Side& side, size_t extraKeyBytes) const;
    bool bannedAt(const Subject& s, SteadyTime now) const {
        return s.hasBan && now < s.bannedUntil;
    }
    bool idle(Subject& s, SteadyTime now) const;
    void pruneFailures(Subject& s, SteadyTime now) const;
    std::chrono::milliseconds banDuration(uint32_t strikes) const;
    std::chrono::milliseconds strikeMemory() const;
    static bool isBanned(const Side& side, std::string_view key, SteadyTime now);

    config::BansConfig config_;
    BanTableLimits limits_;
    Side ips_;
    Side identities_;
    uint64_t untracked_ = 0;
    uint64_t evictedBans_ = 0;
};

// BanTable shared across worker threads. Bans must hold on every worker as soon as they are
// made (the next CONNECT from a banned address, on whichever worker SO_REUSEPORT picks, is
// refused), so recording a failure and checking a ban stay synchronous here rather than
// going through the main loop. What keeps this off the workers' way:
//  - a check while no ban is active (the normal state) is one atomic load of the latest ban
//    end, no lock: a connection flood that causes no ban never touches the mutex;
//  - checks while bans are active share the lock (readers never wait for each other);
//  - only failures, bans and maintenance take it exclusively. Failures are paced by the
//    TLS handshake or the PBKDF2 check that precedes them.
class SharedBanTable : public BanLookup {
  public:
    explicit SharedBanTable(const config::BansConfig& config, BanTableLimits limits = {})
        : table_(config, limits) {}

    BanDecision recordAuthFailure(std::string_view ip, std::string_view identity, SteadyTime now) {
        std::unique_lock lock(mutex_);
        BanDecision d = table_.recordAuthFailure(ip, identity, now);
        publishLatestEnd();
        return d;
    }
    bool isIpBanned(std::string_view ip, SteadyTime now) const override {
        if (noBanActive(now)) return false;
        std::shared_lock lock(mutex_);
        return table_.isIpBanned(ip, now);
    }
    bool isIdentityBanned(std::string_view identity, SteadyTime now) const override {
        if (noBanActive(now)) return false;
        std::shared_lock lock(mutex_);
        return table_.isIdentityBanned(identity, now);
    }
    std::optional<Ban> activeBan(Ban::Kind kind, std::string_view subject, SteadyTime now) const {
        if (noBanActive(now)) return std::nullopt;
        std::shared_lock lock(mutex_);
        return table_.activeBan(kind, subject, now);
    }
    size_t activeBans(SteadyTime now) const {
        std::unique_lock lock(mutex_);  // prunes ended bans from the index
        return table_.activeBans(now);
    }
    std::optional<Ban> impose(Ban::Kind kind, std::string_view subject, SteadyTime now) {
        std::unique_lock lock(mutex_);
        std::optional<Ban> ban = table_.impose(kind, subject, now);
        publishLatestEnd();
        return ban;
    }
    bool adopt(Ban::Kind kind, std::string_view subject, std::chrono::milliseconds duration,
               SteadyTime until, SteadyTime now) {
        std::unique_lock lock(mutex_);
        const bool changed = table_.adopt(kind, subject, duration, until, now);
        publishLatestEnd();
        return changed;
    }
    std::vector<Ban> activeBanList(SteadyTime now) const {
        std::unique_lock lock(mutex_);
        return table_.activeBanList(now);
    }
    uint64_t untrackedFailures() const {
        std::shared_lock lock(mutex_);
        return table_.untrackedFailures();
    }
    uint64_t evictedBans() const {
        std::shared_lock lock(mutex_);
        return table_.evictedBans();
    }
    void sweep(SteadyTime now) {
        std::unique_lock lock(mutex_);
        table_.sweep(now);
        publishLatestEnd();
    }
    void updateConfig(const config::BansConfig& config) {
        std::unique_lock lock(mutex_);
        table_.updateConfig(config);
    }

    // The bound the lock-free check compares with (tests).
    SteadyTime latestBanEndForTest() const {
        return SteadyTime(SteadyTime::duration(latestEnd_.load(std::memory_order_acquire)));
    }

  private:
    // Written under the exclusive lock after every call that may add or drop a ban; read
    // without it. A ban is published (release) before the call that made it returns, so a
    // check that starts after that on any thread sees it (acquire) and takes the lock.
    void publishLatestEnd() {
        latestEnd_.store(table_.latestBanEnd().time_since_epoch().count(),
                         std::memory_order_release);
    }
    bool noBanActive(SteadyTime now) const {
        return now.time_since_epoch().count() >= latestEnd_.load(std::memory_order_acquire);
    }

    mutable std::shared_mutex mutex_;
    BanTable table_;
    std::atomic<SteadyTime::rep> latestEnd_{SteadyTime{}.time_since_epoch().count()};
};

}  // namespace moat::inspect
