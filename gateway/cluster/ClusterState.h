#pragma once
// State shared by gateway replicas through Redis (config `cluster:`): bans, auth-failure
// counts, per-IP connection counts and rates, and kicks. See README "Running several
// replicas" for the model; in short:
//
// - The data path never waits on Redis. Workers decide locally (ban table, admission table)
//   and hand events to this object through a mutex-protected queue and a uv_async_t; the
//   gateway's main loop talks to Redis and feeds what other replicas did back through
//   ClusterHandler. Every shared limit is therefore eventually consistent (typically within
//   a millisecond round trip on a LAN).
// - Bans: a local ban is SET as <prefix>ban:ip|id:<subject> with the ban's TTL and PUBLISHed;
//   every replica applies it (identity bans also disconnect the identity's live sessions).
//   On (re)connect every replica SCANs the ban keys and pushes its own active bans.
// - Auth failures: INCR <prefix>fail:<kind>:<subject> (TTL bans.window from the first one);
//   the replica whose failure reaches bans.auth_failures bans the subject. The local count
//   keeps working alone, so a ban is never later than without the cluster.
// - Connections per IP: each replica keeps HSET <prefix>conn:<replica> ip count (TTL 10 s,
//   refreshed every 2 s) and PUBLISHes each change; others cache the sum per IP and admission
//   adds it to the local count. A replica unheard of for 10 s is forgotten (crash).
// - Connection rate per IP: each `conn` event carries the connections the sender accepted
//   since its previous event; receivers take those tokens from their own bucket for the IP.
// - Kicks: PUBLISH `kick <identity> <reason> [cert sha256]`: every replica disconnects that
//   identity's sessions (only the ones with that certificate when a fingerprint is given).
// - Client-id owners (auth.protect_client_ids): SET <prefix>owner:<client_id> (sealed
//   identity, TTL = the hold left; session_owner_ttl while connected) and PUBLISH `own`; a hold
//   of 0 (released) DELs the key. Every replica adopts owners into its OwnershipTable; on
//   (re)connect it SCANs the owner keys and pushes its own. Claims are judged locally, so two
//   CONNECTs of different identities racing on two replicas within the propagation delay may
//   both pass (the broker then keeps the later one).
// - Redis down: moat_cluster_redis_up 0, one log line and one `cluster` audit event, remote
//   counts dropped (local-only limits), reconnect with backoff, full resync when back.
// - Trust (ClusterAuth.h): with cluster.key_file, events and records carry an HMAC under the
//   fleet's key and what does not verify is dropped (moat_cluster_events_rejected_total,
//   moat_cluster_records_rejected_total). Whatever its origin, an adopted ban is held to
//   bans.max_duration and never pushed back to Redis by its adopters, and every table fed from
//   Redis or the channel is bounded (RemoteConnections, BanTable, kMaxScanKeys).

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/cluster/ClusterAuth.h"
#include "gateway/cluster/ClusterEvent.h"
#include "gateway/cluster/RemoteConnections.h"
#include "gateway/config/Config.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace moat::cluster {

class RedisClient;

// A ban this replica holds, to push into Redis after a reconnect.
struct SharedBan {
    SubjectKind kind;
    std::string subject;
    std::chrono::milliseconds remaining;
    std::chrono::milliseconds duration;
};

// A client-id owner this replica holds, to push into Redis after a reconnect.
struct SharedOwner {
    std::string clientId;
    std::string identity;
    std::chrono::milliseconds hold;
};

// What the gateway does with what other replicas did. Called on the main loop thread.
class ClusterHandler {
  public:
    virtual ~ClusterHandler() = default;
    // A ban from another replica (event or Redis key): apply it locally.
    virtual void onSharedBan(SubjectKind kind, const std::string& subject,
                             std::chrono::milliseconds remaining,
                             std::chrono::milliseconds duration) = 0;
    // The cluster-wide failure count of a subject reached bans.auth_failures through this
    // replica: ban it (and report the ban through ClusterState::banned()).
    virtual void onSharedFailureThreshold(SubjectKind kind, const std::string& subject) = 0;
    virtual void onKick(const std::string& identity, const std::string& fingerprint,
                        KickReason reason) = 0;
    // Another replica accepted `accepted` connections from ip: charge the local rate bucket.
    virtual void onRemoteAccepts(const std::string& ip, uint32_t accepted) = 0;
    virtual void onRedisState(bool up, const std::string& why) = 0;
    virtual std::vector<SharedBan> activeLocalBans() = 0;
    // A client id held by `identity` at another replica for `remaining` (0: released).
    virtual void onSharedOwner(const std::string& clientId, const std::string& identity,
                               std::chrono::milliseconds remaining) {
        (void)clientId, (void)identity, (void)remaining;
    }
    // The owners this replica holds, to push into Redis after a reconnect.
    virtual std::vector<SharedOwner> activeLocalOwners() { return {}; }
};

class ClusterState {
  public:
    ClusterState(uv_loop_t* loop, const config::ClusterConfig& config,
                 const config::BansConfig& bans, prometheus::Registry& registry,
                 ClusterHandler& handler, std::string replicaId = {});
    ~ClusterState();
    ClusterState(const ClusterState&) = delete;
    ClusterState& operator=(const ClusterState&) = delete;

    // Main loop thread.
    void start();
    void close();
    void updateBans(const config::BansConfig& bans);
    const std::string& replicaId() const { return replica_; }

    // ---- any thread; never blocks on Redis
    void connectionOpened(const std::string& ip);
    void connectionClosed(const std::string& ip);
    // A failed login (identity may be empty); ignored for subjects already banned locally.
    void authFailure(const std::string& ip, const std::string& identity);
    // A ban made by this replica.
    void banned(SubjectKind kind, const std::string& subject, std::chrono::milliseconds remaining,
                std::chrono::milliseconds duration);
    void kick(const std::string& identity, const std::string& fingerprint, KickReason reason);
    // A client id held here by `identity` for `hold` (0: released, or released by an operator).
    void ownerChanged(const std::string& clientId, const std::string& identity,
                      std::chrono::milliseconds hold);
    // Connections from ip live at other replicas (0 when Redis is down).
    uint32_t remoteConnections(const std::string& ip) const;
    bool redisUp() const;

  private:
    struct LocalEvent {
        enum class Type : uint8_t { Opened, Closed, AuthFailure, Ban, Kick, Owner };
        Type type = Type::Opened;
        SubjectKind kind = SubjectKind::Ip;
        std::string a;  // ip / subject / identity
        std::string b;  // identity (AuthFailure, Owner) / fingerprint (Kick)
        std::chrono::milliseconds remaining{0}, duration{0};
        KickReason reason = KickReason::Banned;
    };
    struct LocalIp {
        uint32_t connections = 0;
        uint32_t acceptedSinceEvent = 0;
        uint32_t published = 0;  // the count other replicas were last told
    };
    static LocalEvent makeEvent(LocalEvent::Type type, SubjectKind kind, const std::string& a);
    void push(LocalEvent event);
    static void onAsync(uv_async_t* h);
    static void onHeartbeat(uv_timer_t* t);
    void drain();
    void flushIp(const std::string& ip);
    void countFailure(SubjectKind kind, const std::string& subject);
    void onUp();
    void onDown(const std::string& why, bool wasUp);
    void onMessage(std::string_view payload);
    void publish(const ClusterEvent& event);
    void setRemote(const std::string& replica, const std::string& ip, uint32_t count,
                   uint64_t nowMs);
    void forgetReplica(const std::string& replica);
    void updateRemoteGauges();
    void rejected(prometheus::Family<prometheus::Counter>* family, Authenticity why);
    void clearRemote();
    void resync();
    void scanKeys(const char* what, const std::string& cursor,
                  std::function<void(std::string_view key)> onKey,
                  std::shared_ptr<size_t> seen = nullptr);
    void scanBans();
    void scanOwners();
    void pushOwner(const std::string& clientId, const std::string& identity,
                   std::chrono::milliseconds hold);
    void scanConns();
    void fetchReplica(const std::string& replica);
    void syncError();

    uv_loop_t* loop_;
    config::ClusterConfig config_;
    config::BansConfig bans_;
    ClusterHandler& handler_;
    std::string replica_;
    std::string channel_;
    std::string ownConnKey_;
    std::unique_ptr<RedisClient> redis_;
    uv_async_t async_{};
    uv_timer_t heartbeat_{};
    bool started_ = false;
    bool closed_ = false;        // guarded by queueMutex_
    bool reportedDown_ = false;  // one log line / audit event per outage

    std::mutex queueMutex_;
    std::vector<LocalEvent> queue_;

    // Main loop only (but for RemoteConnections::sumFor).
    std::unordered_map<std::string, LocalIp> local_;
    RemoteConnections remote_;
    std::atomic<bool> up_{false};

    prometheus::Gauge* redisUpGauge_ = nullptr;
    prometheus::Counter* syncErrors_ = nullptr;
    prometheus::Gauge* remoteConnectionsGauge_ = nullptr;
    prometheus::Gauge* replicasGauge_ = nullptr;
    prometheus::Family<prometheus::Counter>* eventsFamily_ = nullptr;
    prometheus::Family<prometheus::Counter>* eventsRejected_ = nullptr;
    prometheus::Family<prometheus::Counter>* recordsRejected_ = nullptr;
    prometheus::Counter* remoteDropped_ = nullptr;
    std::unordered_map<std::string, prometheus::Counter*> eventCounters_;
    prometheus::Counter& eventCounter(const char* direction, const char* type);
};

// hostname-pid-random: unique per process, readable in Redis and in logs.
std::string makeReplicaId();

}  // namespace moat::cluster
