#pragma once
// Accept-time admission control, decided before any TLS work is spent on a connection:
// bans, `connection_rate_per_ip`, `max_connections_per_ip`, `max_connections`.
//
// One instance per worker (workers share nothing), so its per-IP counts and rates are per
// worker. For the global `max_connections`, pass one SharedCounter to every worker's
// instance; without it the limit is enforced per worker, and the caller should then divide
// max_connections across workers. Per-IP limits stay per worker unless connections from one
// IP always land on the same worker (one acceptor hashing by source address), or the caller
// divides those limits too.
//
// Keys are the source address as the caller spells it. For IPv6 the caller may want to key
// by /64 (a single subscriber owns a whole /64); see ipLimitKey().

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gateway/config/Config.h"
#include "gateway/inspect/limits/BanTable.h"
#include "gateway/inspect/limits/KeyedHash.h"
#include "gateway/inspect/limits/SharedCounter.h"
#include "gateway/inspect/limits/TokenBucket.h"

namespace moat::inspect {

enum class Admission {
    Accepted,
    LimitedTotal,  // max_connections
    LimitedPerIp,  // max_connections_per_ip
    LimitedRate,   // connection_rate_per_ip
    Banned,
};

// The `limit` label of moat_rate_limited_total ("max_connections", ...), "accepted", "banned".
const char* admissionName(Admission a);

class ConnectionAdmission {
  public:
    // `total`, when given, must outlive this object. maxTrackedIps bounds the idle per-IP
    // entries kept for rate limiting; entries with live connections are never dropped.
    explicit ConnectionAdmission(const config::LimitsConfig& limits, SharedCounter* total = nullptr,
                                 size_t maxTrackedIps = 65536);
    ConnectionAdmission(const ConnectionAdmission&) = delete;
    ConnectionAdmission& operator=(const ConnectionAdmission&) = delete;
    ~ConnectionAdmission();

    // Checks in this order: ban, rate (every attempt that is not banned costs a token, so a
    // client hammering at its per-IP cap is also rate limited), per-IP count, total count.
    // On Accepted the connection is counted until release(ip).
    // `elsewhere`: connections from ip held by other gateway replicas (cluster), counted
    // against max_connections_per_ip with this instance's own.
    Admission admit(std::string_view ip, SteadyTime now, const BanLookup& bans,
                    uint32_t elsewhere = 0);
    // Another replica accepted `count` connections from ip: they cost tokens here too, as
    // local accepts would (no debt beyond what one local accept may cause), so
    // connection_rate_per_ip holds across replicas.
    void chargeElsewhere(std::string_view ip, uint32_t count, SteadyTime now);
    // The connection admitted for `ip` has closed.
    void release(std::string_view ip);

    size_t active() const { return active_; }  // connections admitted by this instance
    size_t trackedIps() const { return ips_.size(); }

    // New limits apply to the next admit(); live connections above a lowered limit stay.
    void updateLimits(const config::LimitsConfig& limits);
    // Drops idle entries that carry no rate history. Call periodically (e.g. every 10 s).
    void sweep(SteadyTime now);

  private:
    struct IpState {
        uint32_t active = 0;
        TokenBucket rate;
    };
    using Map = std::unordered_map<std::string, IpState, KeyedHash, std::equal_to<>>;

    IpState& findOrInsert(std::string_view ip, SteadyTime now);
    void evictIdle();

    config::LimitsConfig limits_;
    SharedCounter* total_;
    size_t maxTrackedIps_;
    size_t active_ = 0;
    Map ips_;
};

// Key for per-IP limits: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 as its /64 prefix
// ("2001:db8:1:2::/64"). Input that is not an address is returned unchanged.
std::string ipLimitKey(std::string_view ip);

}  // namespace moat::inspect
