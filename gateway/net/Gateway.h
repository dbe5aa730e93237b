#pragma once
// The process: binds the listeners, runs the workers, owns what they share (metrics, audit
// log, ban table), and runs the main loop for signals (SIGHUP reload, SIGTERM/SIGINT drain),
// the metrics/health HTTP endpoint and the backend health probe.

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/cluster/ClusterState.h"
#include "gateway/inspect/BackendHealth.h"
#include "gateway/inspect/OwnershipTable.h"
#include "gateway/inspect/limits/BanTable.h"
#include "gateway/inspect/limits/ConnectionAdmission.h"
#include "gateway/inspect/limits/IdentityGuard.h"
#include "gateway/inspect/limits/ShardedAdmission.h"
#include "gateway/inspect/limits/SharedCounter.h"
#include "gateway/metrics/Anomaly.h"
#include "gateway/metrics/AuditLog.h"
#include "gateway/metrics/HttpEndpoint.h"
#include "gateway/metrics/Metrics.h"
#include "gateway/net/AuthPool.h"
#include "gateway/net/BackendResolver.h"
#include "gateway/net/JwksFetcher.h"
#include "gateway/net/ReloadGate.h"
#include "gateway/net/Snapshot.h"

namespace moat::metrics {
class HttpEndpoint;
class AddressAnomalies;
class AddressEventQueue;
struct AddressEvent;
}  // namespace moat::metrics

namespace moat::net {

class Worker;
class FileWatcher;
struct ReloadWork;

// A password check in progress: charged to the identity guard when it starts (CONTRACT §3),
// settled with its result (a failure then counts towards the address's ban).
struct AuthCharge {
    std::string ip;
    std::string identity;  // the claimed username
    std::chrono::steady_clock::time_point at{};
    bool identityCharged = false;
    std::chrono::milliseconds delay{0};  // identity under attack, address not trusted for it
};

// Privately a ClusterHandler: with `cluster:` configured, what other replicas decide arrives
// here on the main loop (GatewayCluster.cpp).
class Gateway : private cluster::ClusterHandler {
  public:
    Gateway(std::string configPath, std::shared_ptr<const Snapshot> snapshot);
    ~Gateway();

    // Runs until SIGTERM/SIGINT and the drain are done. Returns the process exit status.
    int run();

    // ---- called from worker threads (all thread-safe)
    metrics::Metrics& metrics() { return metrics_; }
    bool admit(Worker& worker, const std::string& listener, const std::string& ip);
    void release(Worker& worker, const std::string& listener, const std::string& ip);
    void tlsHandshakeOk(const std::string& listener);
    void tlsHandshakeFailed(const std::string& listener);
    void authCounted(std::string_view method, bool success);
    // A failed authentication from ip (identity may be empty): bans, anomalies.
    void authFailed(Worker& worker, std::string_view method, const std::string& ip,
                    const std::string& identity);
    // A TLS handshake from ip that failed for another reason than its certificate (no shared
    // group, version or cipher; garbage) or that the client abandoned after sending bytes:
    // counts towards the address's ban like a failed login (bans.auth_failures), so that one
    // address cannot make the gateway run expensive handshakes without end.
    void handshakeFailed(const std::string& ip);
    // Password checks (AuthPool): charged when started or queued, settled with the result
    // (success withdraws the charge; anything else confirms it: bans, anomalies, cluster).
    AuthCharge chargePasswordCheck(const std::string& ip, const std::string& identity);
    void settlePasswordCheck(const AuthCharge& charge, bool succeeded);
    // `identity` logged in from `ip`: from there it is never slowed by failures charged to it.
    void loggedIn(const std::string& identity, const std::string& ip);
    AuthPool& authPool() { return *authPool_; }
    // auth.token.jwks_url's keys (null without one). Any thread.
    std::shared_ptr<JwksFetcher> jwksFetcher() const {
        std::lock_guard lock(jwksMutex_);
        return jwks_;
    }
    // A topic denied to connection `connectionId`: may raise a topic_scan anomaly. Called on
    // the connection's worker thread: the calling worker's own detector answers, no lock.
    std::optional<metrics::Anomaly> deniedTopic(uint64_t connectionId, std::string_view topic);
    void forgetConnection(uint64_t connectionId);
    // Counts the anomaly and writes its audit event.
    void raiseAnomaly(const metrics::Anomaly& anomaly, std::string_view listener,
                      std::string_view remote, std::string_view clientId,
                      std::string_view identity);
    bool isIpBanned(const std::string& ip);
    bool isIdentityBanned(const std::string& identity);
    void authzDenied(std::string_view action) { metrics_.authzDenied(action); }
    void rateLimited(std::string_view limit) { metrics_.rateLimited(limit); }
    void protocolError(std::string_view reason) { metrics_.protocolError(reason); }
    void clientReadsPaused(std::string_view reason) { metrics_.clientReadsPaused(reason); }
    void setBackendReachable(bool up);
    // The broker's CONNACK for a device: missing within backend.connect_timeout, or arrived.
    // Repeated timeouts mark the broker down (BackendHealth) although TCP connects succeed.
    void backendConnackTimedOut();
    void backendConnackReceived();
    bool backendReachable() const { return backendUp_.load(std::memory_order_relaxed); }
    // The broker's address as last resolved (never a DNS lookup here: BackendResolver).
    bool backendAddress(const config::HostPort& address, sockaddr_storage& out) const {
        return resolver_.lookup(address, out);
    }
    void audit(std::string_view event, std::string_view listener, std::string_view remote,
               std::string_view clientId, std::string_view identity, std::string_view protocol,
               std::string_view action = {}, std::string_view topic = {},
               std::string_view rule = {}, std::string_view reason = {},
               std::optional<uint64_t> count = {});
    void workerStopped();

    // ---- client-id ownership (auth.protect_client_ids, GatewayOwners.cpp; any thread)
    // One table per process behind a mutex: a claim and a release per connection (like the
    // admission table), never per packet, and every SO_REUSEPORT worker sees the same owners
    // at once, with no hop to the main loop on the CONNECT path.
    inspect::OwnershipTable::Claim claimClientId(const std::string& clientId,
                                                 const std::string& identity);
    // `sessionExpiry`: see OwnershipTable::release.
    void releaseClientId(const std::string& clientId, const std::string& identity,
                         std::optional<uint32_t> sessionExpiry,
                         std::vector<std::string> subscriptions = {});
    void clientIdRefused() { metrics_.clientIdRefused(); }
    // A session ended by this replica's reload (revoked certificate, no rights left): ask the
    // other replicas to disconnect the identity too. No-op without `cluster:`.
    void shareKick(const std::string& identity, const std::string& fingerprint,
                   cluster::KickReason reason);

  private:
    bool bindListeners(std::string& error);
    void startMain();
    void reload();       // coalesced through reloadGate_
    void startReload();  // loads the new snapshot on the thread pool
    void applyReload(ReloadWork& work);
    // Starts, replaces or stops the JWKS fetcher to match the current snapshot.
    void updateJwksFetcher();
    void beginShutdown();
    // The files whose change triggers an automatic reload (config, TLS files, passwords).
    std::vector<std::string> watchedFiles() const;
    static void onSignal(uv_signal_t* h, int signum);
    static void onHousekeeping(uv_timer_t* t);
    // moat_certificate_expiry_seconds of every TLS listener (start, reload, each second).
    void updateCertExpiry();
    static void onHealthCheck(uv_timer_t* t);
    bool brokerUnresponsive();  // BackendHealth: repeated CONNACK timeouts, not yet cleared
    void restartHealthCheck();
    // Failures short of a ban, anomalies and the cluster's count (not the ban table itself).
    // `queue`: the calling worker's own (or otherEvents_ off the workers).
    void shareAuthFailure(const std::string& ip, const std::string& identity,
                          std::chrono::steady_clock::time_point now,
                          metrics::AddressEventQueue& queue);
    static void onWorkersDone(uv_async_t* h);
    // ---- per-address anomalies (auth_failures, connection_storm): any thread queues the
    // event without waiting (its worker's queue, or otherEvents_) and wakes the main loop,
    // which drains every queue into the one detector and raises what it finds.
    void queueAddressEvent(metrics::AddressEventQueue& queue, metrics::AddressEvent event);
    void wakeForAddressEvents();
    static void onAddressEvents(uv_async_t* h);
    void drainAddressEvents();
    void closeAddressEvents();

    // ---- cluster (GatewayCluster.cpp)
    void startCluster();
    // A ban made here: kick the identity's sessions, share it with the other replicas.
    void banMade(const inspect::Ban& ban, std::string_view reason);
    // One failure towards the address's ban (this replica; a ban made is audited with
    // `reason` and shared).
    void recordAddressFailure(const std::string& ip, std::string_view reason,
                              std::chrono::steady_clock::time_point now);
    // Audits a ban in force here (`duration`: what the audit's count reports, in seconds)
    // and, for an identity, disconnects its sessions on this replica.
    void enforceBan(inspect::Ban::Kind kind, const std::string& subject, std::string_view reason,
                    std::chrono::milliseconds duration, const char* why);
    // Disconnects `identity`'s sessions on every worker of this replica.
    void kickLocal(const std::string& identity, const std::string& fingerprint,
                   cluster::KickReason reason, const std::string& why);
    void onSharedBan(cluster::SubjectKind kind, const std::string& subject,
                     std::chrono::milliseconds remaining,
                     std::chrono::milliseconds duration) override;
    void onSharedFailureThreshold(cluster::SubjectKind kind, const std::string& subject) override;
    void onKick(const std::string& identity, const std::string& fingerprint,
                cluster::KickReason reason) override;
    void onRemoteAccepts(const std::string& ip, uint32_t accepted) override;
    void onRedisState(bool up, const std::string& why) override;
    std::vector<cluster::SharedBan> activeLocalBans() override;
    void onSharedOwner(const std::string& clientId, const std::string& identity,
                       std::chrono::milliseconds remaining) override;
    std::vector<cluster::SharedOwner> activeLocalOwners() override;
    // GET /owners, POST /owners/release?client_id=ID on the metrics port (loopback only).
    metrics::HttpEndpoint::AdminResponse ownersRequest(std::string_view method,
                                                       std::string_view path,
                                                       std::string_view query);
    void sweepOwners();

    std::string configPath_;
    std::shared_ptr<const Snapshot> snapshot_;
    metrics::Metrics metrics_;
    std::unique_ptr<metrics::AuditLog> audit_;
    inspect::SharedBanTable bans_;
    inspect::SharedCounter totalConnections_;
    // One admission view for all workers, so per-IP limits are per process; sharded by
    // address, a lock per shard (see ShardedAdmission for why it stays synchronous).
    std::unique_ptr<inspect::ShardedAdmission> admission_;
    std::atomic<bool> backendUp_{true};
    std::vector<std::unique_ptr<Worker>> workers_;
    std::unique_ptr<metrics::HttpEndpoint> http_;
    std::unique_ptr<FileWatcher> watcher_;
    std::mutex healthMutex_;
    inspect::BackendHealth health_;                         // guarded by healthMutex_
    std::unique_ptr<metrics::AddressAnomalies> anomalies_;  // main loop only
    // Per-address events from threads that are not workers (password checks).
    std::unique_ptr<metrics::AddressEventQueue> otherEvents_;
    uint64_t eventsDropped_ = 0;                      // main loop: dropped events already logged
    std::unique_ptr<cluster::ClusterState> cluster_;  // with `cluster:` only
    inspect::SharedIdentityGuard identityGuard_;
    std::unique_ptr<AuthPool> authPool_;
    mutable std::mutex jwksMutex_;
    std::shared_ptr<JwksFetcher> jwks_;
    std::mutex ownersMutex_;
    inspect::OwnershipTable owners_;  // guarded by ownersMutex_

    uv_loop_t loop_{};
    BackendResolver resolver_{&loop_};
    uv_signal_t sigHup_{}, sigTerm_{}, sigInt_{};
    uv_timer_t housekeeping_{};
    uv_timer_t healthCheck_{};
    void* probe_ = nullptr;  // the health probe in flight (HealthProbe*), closed at shutdown
    uv_async_t workersDone_{};
    uv_async_t addressEvents_{};
    // Wakes from other threads race with closing addressEvents_ at shutdown: a waker counts
    // itself in wakers_ and checks eventsOpen_ (seq_cst both), so the closer, which clears
    // eventsOpen_ and then waits for wakers_ to reach 0, never closes under a uv_async_send.
    std::atomic<bool> eventsOpen_{false};
    std::atomic<int> wakers_{0};
    std::atomic<int> runningWorkers_{0};
    bool shuttingDown_ = false;
    ReloadGate reloadGate_;
    int secondsSinceResolve_ = 0;    // housekeeping ticks since the backend was re-resolved
    uint64_t healthCheckEvery_ = 0;  // ms the health-check timer runs at; 0: stopped
};

}  // namespace moat::net
