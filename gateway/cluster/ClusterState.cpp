#include "gateway/cluster/ClusterState.h"

#include <hiredis/hiredis.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <optional>
#include <random>
#include <unordered_set>

#include "gateway/cluster/RedisClient.h"

namespace moat::cluster {

namespace {

using std::chrono::milliseconds;

constexpr uint64_t kHeartbeatMs = 2000;
// A replica's hash and its place in the others' caches outlive it by this much.
constexpr uint64_t kReplicaTtlMs = 10000;
constexpr const char* kScanCount = "500";
// Keys one resync looks at per kind: Redis content is not trusted to be small (the ban table
// holds 100000 subjects per kind; more keys than that cannot all be kept anyway).
constexpr size_t kMaxScanKeys = 250000;

uint64_t unixNowMs() {
    return static_cast<uint64_t>(std::chrono::duration_cast<milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

// INCR with the window set by the first failure, atomically (any Redis >= 2.6).
constexpr const char* kIncrWithWindow =
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n";
// A ban key only ever gets longer: two replicas banning at once keep the later end.
constexpr const char* kExtendBan =
    "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end return 1";
// {time left, duration} of a ban key; a single element when it vanished meanwhile.
// A value longer than any record (written by something else) reads as "" (malformed), so a
// huge one never crosses the network.
constexpr const char* kReadBan =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.len(v) > 256 then v = '' end "
    "return {redis.call('PTTL', KEYS[1]), v}";
// An owner record and its TTL (values of any size read as malformed).
constexpr const char* kReadOwner =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.len(v) > 4096 then v = '' end "
    "return {redis.call('PTTL', KEYS[1]), v}";
// A replica's connection hash, unless it holds more fields than any replica can (ARGV[1]).
constexpr const char* kReadConns =
    "if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then "
    "return redis.error_reply('too many fields') end "
    "return redis.call('HGETALL', KEYS[1])";

const char* eventTypeName(ClusterEvent::Type t) {
    switch (t) {
        case ClusterEvent::Type::Ban:
            return "ban";
        case ClusterEvent::Type::Kick:
            return "kick";
        case ClusterEvent::Type::Conn:
            return "conn";
        case ClusterEvent::Type::Heartbeat:
            return "hb";
        case ClusterEvent::Type::Owner:
            return "own";
    }
    return "hb";
}

std::string_view str(const redisReply* r) {
    return r && r->type == REDIS_REPLY_STRING ? std::string_view(r->str, r->len)
                                              : std::string_view();
}

std::optional<uint64_t> number(const redisReply* r) {
    if (!r) return std::nullopt;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer < 0 ? std::nullopt : std::optional<uint64_t>(r->integer);
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < r->len; ++i) {
        if (r->str[i] < '0' || r->str[i] > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(r->str[i] - '0');
    }
    return v;
}

bool isError(const redisReply* r) {
    return !r || r->type == REDIS_REPLY_ERROR;
}

// A read script's reply {TTL ms, sealed record} for a key that still lives: the TTL, else
// nullopt (gone, expired, or not the script's shape).
std::optional<uint64_t> liveTtl(const redisReply* v) {
    if (!v || v->type != REDIS_REPLY_ARRAY || v->elements != 2) return std::nullopt;
    if (v->element[0]->type != REDIS_REPLY_INTEGER || v->element[0]->integer <= 0)
        return std::nullopt;
    return static_cast<uint64_t>(v->element[0]->integer);
}

// The time a shared record has left: the key's TTL, but never past a signed end (a TTL anyone
// with write access could lengthen). nullopt: the signed end has passed.
std::optional<uint64_t> timeLeft(uint64_t ttl, std::optional<uint64_t> endUnixMs) {
    if (!endUnixMs) return ttl;
    const uint64_t now = unixNowMs();
    if (*endUnixMs <= now) return std::nullopt;
    return std::min(ttl, *endUnixMs - now);
}

}  // namespace

std::string makeReplicaId() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        std::snprintf(host, sizeof host, "moat");
    std::random_device rd;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xffffff);
    return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

ClusterState::ClusterState(uv_loop_t* loop, const config::ClusterConfig& config,
                           const config::BansConfig& bans, prometheus::Registry& registry,
                           ClusterHandler& handler, std::string replicaId)
    : loop_(loop),
      config_(config),
      bans_(bans),
      handler_(handler),
      replica_(replicaId.empty() ? makeReplicaId() : std::move(replicaId)),
      channel_(eventsChannel(config.keyPrefix)),
      ownConnKey_(connKey(config.keyPrefix, replica_)) {
    redisUpGauge_ = &prometheus::BuildGauge()
                         .Name("moat_cluster_redis_up")
                         .Help(
                             "1 while the cluster's Redis is reachable (state is shared), 0 "
                             "while limits are local to this replica")
                         .Register(registry)
                         .Add({});
    syncErrors_ = &prometheus::BuildCounter()
                       .Name("moat_cluster_sync_errors_total")
                       .Help("Lost Redis connections, failed commands and undecodable events")
                       .Register(registry)
                       .Add({});
    remoteConnectionsGauge_ = &prometheus::BuildGauge()
                                   .Name("moat_cluster_remote_connections")
                                   .Help("Connections held by other replicas, as known here")
                                   .Register(registry)
                                   .Add({});
    replicasGauge_ = &prometheus::BuildGauge()
                          .Name("moat_cluster_peers")
                          .Help("Other replicas heard from within the last 10 s")
                          .Register(registry)
                          .Add({});
    eventsFamily_ = &prometheus::BuildCounter()
                         .Name("moat_cluster_events_total")
                         .Help(
                             "Events on the cluster channel, by direction (sent|received) "
                             "and type (ban|kick|conn|hb)")
                         .Register(registry);
    for (const char* d : {"sent", "received"})
        for (const char* t : {"ban", "kick", "conn", "hb"}) eventCounter(d, t);
    eventsRejected_ = &prometheus::BuildCounter()
                           .Name("moat_cluster_events_rejected_total")
                           .Help(
                               "Cluster events dropped unheard, by reason (unsigned|bad_signature|"
                               "stale|malformed|invalid): with cluster.key_file, events must carry "
                               "a valid HMAC")
                           .Register(registry);
    recordsRejected_ = &prometheus::BuildCounter()
                            .Name("moat_cluster_records_rejected_total")
                            .Help(
                                "Ban and connection records read from Redis and dropped, by "
                                "reason (unsigned|bad_signature|malformed|invalid)")
                            .Register(registry);
    for (auto* f : {eventsRejected_, recordsRejected_})
        for (const char* r : {"unsigned", "bad_signature", "stale", "malformed", "invalid"})
            f->Add({{"reason", r}});
    remoteDropped_ = &prometheus::BuildCounter()
                          .Name("moat_cluster_remote_dropped_total")
                          .Help(
                              "Other replicas' connection counts not kept because the bounded "
                              "remote tables were full")
                          .Register(registry)
                          .Add({});
}

void ClusterState::rejected(prometheus::Family<prometheus::Counter>* family, Authenticity why) {
    family->Add({{"reason", authenticityName(why)}}).Increment();
}

ClusterState::~ClusterState() {
    close();
}

prometheus::Counter& ClusterState::eventCounter(const char* direction, const char* type) {
    std::string key = std::string(direction) + "/" + type;
    auto it = eventCounters_.find(key);
    if (it != eventCounters_.end()) return *it->second;
    auto& c = eventsFamily_->Add({{"direction", direction}, {"type", type}});
    eventCounters_.emplace(key, &c);
    return c;
}

void ClusterState::start() {
    if (started_ || !config_.redis) return;
    started_ = true;
    uv_async_init(loop_, &async_, onAsync);
    async_.data = this;
    uv_timer_init(loop_, &heartbeat_);
    heartbeat_.data = this;
    uv_timer_start(&heartbeat_, onHeartbeat, kHeartbeatMs, kHeartbeatMs);
    RedisCallbacks cb;
    cb.onUp = [this] { onUp(); };
    cb.onDown = [this](const std::string& why, bool wasUp) { onDown(why, wasUp); };
    cb.onMessage = [this](std::string_view payload) { onMessage(payload); };
    redis_ =
        std::make_unique<RedisClient>(loop_, config_.redis->host, config_.redis->port, channel_,
                                      RedisAuth{config_.username, config_.password}, std::move(cb));
    redis_->start();
}

void ClusterState::close() {
    {
        std::lock_guard lock(queueMutex_);
        if (closed_) return;
        closed_ = true;
    }
    if (!started_) return;
    // Leave the cluster cleanly: the others stop counting this replica's connections now
    // rather than after kReplicaTtlMs.
    if (redis_ && redis_->up()) redis_->command({"DEL", ownConnKey_});
    if (redis_) redis_->close();
    up_ = false;
    for (auto* h :
         {reinterpret_cast<uv_handle_t*>(&async_), reinterpret_cast<uv_handle_t*>(&heartbeat_)})
        if (!uv_is_closing(h)) uv_close(h, nullptr);
}

void ClusterState::updateBans(const config::BansConfig& bans) {
    bans_ = bans;
}

bool ClusterState::redisUp() const {
    return up_.load(std::memory_order_relaxed);
}

uint32_t ClusterState::remoteConnections(const std::string& ip) const {
    return remote_.sumFor(ip);
}

// ---------------------------------------------------------------- worker-facing queue

void ClusterState::push(LocalEvent event) {
    {
        std::lock_guard lock(queueMutex_);
        if (closed_ || !started_) return;
        queue_.push_back(std::move(event));
    }
    uv_async_send(&async_);
}

ClusterState::LocalEvent ClusterState::makeEvent(LocalEvent::Type type, SubjectKind kind,
                                                 const std::string& a) {
    LocalEvent e;
    e.type = type;
    e.kind = kind;
    e.a = a;
    return e;
}

void ClusterState::connectionOpened(const std::string& ip) {
    push(makeEvent(LocalEvent::Type::Opened, SubjectKind::Ip, ip));
}

void ClusterState::connectionClosed(const std::string& ip) {
    push(makeEvent(LocalEvent::Type::Closed, SubjectKind::Ip, ip));
}

void ClusterState::authFailure(const std::string& ip, const std::string& identity) {
    if (bans_.authFailures == 0) return;
    LocalEvent e = makeEvent(LocalEvent::Type::AuthFailure, SubjectKind::Ip, ip);
    e.b = identity;
    push(std::move(e));
}

void ClusterState::banned(SubjectKind kind, const std::string& subject, milliseconds remaining,
                          milliseconds duration) {
    LocalEvent e = makeEvent(LocalEvent::Type::Ban, kind, subject);
    e.remaining = remaining;
    e.duration = duration;
    push(std::move(e));
}

void ClusterState::kick(const std::string& identity, const std::string& fingerprint,
                        KickReason reason) {
    LocalEvent e = makeEvent(LocalEvent::Type::Kick, SubjectKind::Identity, identity);
    e.b = fingerprint;
    e.reason = reason;
    push(std::move(e));
}

void ClusterState::onAsync(uv_async_t* h) {
    static_cast<ClusterState*>(h->data)->drain();
}

void ClusterState::drain() {
    std::vector<LocalEvent> events;
    {
        std::lock_guard lock(queueMutex_);
        events.swap(queue_);
    }
    std::unordered_set<std::string> dirty;
    const bool up = redis_ && redis_->up();
    for (auto& e : events) {
        switch (e.type) {
            case LocalEvent::Type::Opened: {
                LocalIp& l = local_[e.a];
                ++l.connections;
                ++l.acceptedSinceEvent;
                dirty.insert(e.a);
                break;
            }
            case LocalEvent::Type::Closed: {
                auto it = local_.find(e.a);
                if (it != local_.end() && it->second.connections > 0) --it->second.connections;
                dirty.insert(e.a);
                break;
            }
            case LocalEvent::Type::AuthFailure:
                if (!up) break;
                if (!e.a.empty()) countFailure(SubjectKind::Ip, e.a);
                if (!e.b.empty() && e.b.size() <= kMaxSubjectBytes)
                    countFailure(SubjectKind::Identity, e.b);
                break;
            case LocalEvent::Type::Ban: {
                if (!up) break;  // pushed with the other active bans on the next up
                std::string key = banKey(config_.keyPrefix, e.kind, e.a);
                const int64_t left = std::max<int64_t>(1, e.remaining.count());
                if (!redis_->command(
                        {"EVAL", kExtendBan, "1", key,
                         sealBan(config_.key, key, static_cast<uint64_t>(e.duration.count()),
                                 unixNowMs() + static_cast<uint64_t>(left)),
                         std::to_string(left)},
                        [this](const redisReply* r) {
                            if (isError(r)) syncError();
                        }))
                    syncError();
                ClusterEvent ev;
                ev.type = ClusterEvent::Type::Ban;
                ev.kind = e.kind;
                ev.subject = e.a;
                ev.remaining = e.remaining;
                ev.duration = e.duration;
                publish(ev);
                break;
            }
            case LocalEvent::Type::Owner:
                if (!up) break;  // pushed with the other local owners on the next up
                pushOwner(e.a, e.b, e.remaining);
                break;
            case LocalEvent::Type::Kick: {
                if (!up) break;  // a kick is now or never: the identity may reconnect anyway
                ClusterEvent ev;
                ev.type = ClusterEvent::Type::Kick;
                ev.subject = e.a;
                ev.fingerprint = e.b;
                ev.reason = e.reason;
                publish(ev);
                break;
            }
        }
    }
    for (const auto& ip : dirty) flushIp(ip);
}

// Tells Redis and the other replicas this replica's count for ip (absolute, so a lost or
// repeated event heals with the next one).
void ClusterState::flushIp(const std::string& ip) {
    auto it = local_.find(ip);
    if (it == local_.end()) return;
    LocalIp& l = it->second;
    if (redis_ && redis_->up() && (l.connections != l.published || l.acceptedSinceEvent > 0)) {
        bool ok = l.connections > 0
                      ? redis_->command({"HSET", ownConnKey_, ip,
                                         sealConn(config_.key, ownConnKey_, ip, l.connections)})
                      : redis_->command({"HDEL", ownConnKey_, ip});
        ok = ok && redis_->command({"PEXPIRE", ownConnKey_, std::to_string(kReplicaTtlMs)});
        if (!ok) syncError();
        ClusterEvent ev;
        ev.type = ClusterEvent::Type::Conn;
        ev.subject = ip;
        ev.connections = l.connections;
        ev.accepted = l.acceptedSinceEvent;
        publish(ev);
        l.published = l.connections;
    }
    l.acceptedSinceEvent = 0;
    if (l.connections == 0 && l.published == 0) local_.erase(it);
}

void ClusterState::countFailure(SubjectKind kind, const std::string& subject) {
    std::string key = failKey(config_.keyPrefix, kind, subject);
    std::string window = std::to_string(std::max<int64_t>(1, bans_.window.count()));
    bool sent = redis_->command({"EVAL", kIncrWithWindow, "1", key, window},
                                [this, kind, subject, key](const redisReply* r) {
                                    auto n = number(r);
                                    if (!n) {
                                        syncError();
                                        return;
                                    }
                                    if (bans_.authFailures == 0 || *n < bans_.authFailures) return;
                                    // The count starts again after this ban.
                                    if (redis_ && redis_->up()) redis_->command({"DEL", key});
                                    handler_.onSharedFailureThreshold(kind, subject);
                                });
    if (!sent) syncError();
}

void ClusterState::publish(const ClusterEvent& event) {
    ClusterEvent e = event;
    e.replica = replica_;
    if (!redis_ || !redis_->command({"PUBLISH", channel_,
                                     sealEvent(encodeEvent(e), config_.key, unixNowMs())})) {
        syncError();
        return;
    }
    eventCounter("sent", eventTypeName(e.type)).Increment();
}

void ClusterState::syncError() {
    syncErrors_->Increment();
}

// ---------------------------------------------------------------- Redis up / down

void ClusterState::onUp() {
    up_ = true;
    redisUpGauge_->Set(1);
    reportedDown_ = false;
    handler_.onRedisState(true, "");
    resync();
}

void ClusterState::onDown(const std::string& why, bool wasUp) {
    up_ = false;
    redisUpGauge_->Set(0);
    syncError();
    // Local-only limits until Redis is back: what other replicas hold is unknown now.
    clearRemote();
    if (wasUp || !reportedDown_) {
        reportedDown_ = true;
        handler_.onRedisState(false, why);
    }
}

// After a (re)connect nothing is assumed: this replica rewrites its own connection hash and
// pushes its bans, and reloads the others' hashes and every ban.
void ClusterState::resync() {
    std::vector<std::string> hset{"HSET", ownConnKey_};
    redis_->command({"DEL", ownConnKey_});
    for (auto it = local_.begin(); it != local_.end();) {
        LocalIp& l = it->second;
        if (l.connections > 0) {
            hset.push_back(it->first);
            hset.push_back(sealConn(config_.key, ownConnKey_, it->first, l.connections));
        }
        ClusterEvent ev;
        ev.type = ClusterEvent::Type::Conn;
        ev.subject = it->first;
        ev.connections = l.connections;
        ev.accepted = 0;
        publish(ev);
        l.published = l.connections;
        l.acceptedSinceEvent = 0;
        it = l.connections == 0 ? local_.erase(it) : std::next(it);
    }
    if (hset.size() > 2) redis_->command(hset);
    redis_->command({"PEXPIRE", ownConnKey_, std::to_string(kReplicaTtlMs)});

    for (const SharedBan& b : handler_.activeLocalBans()) {
        const std::string key = banKey(config_.keyPrefix, b.kind, b.subject);
        const int64_t left = std::max<int64_t>(1, b.remaining.count());
        redis_->command({"EVAL", kExtendBan, "1", key,
                         sealBan(config_.key, key, static_cast<uint64_t>(b.duration.count()),
                                 unixNowMs() + static_cast<uint64_t>(left)),
                         std::to_string(left)});
        ClusterEvent ev;
        ev.type = ClusterEvent::Type::Ban;
        ev.kind = b.kind;
        ev.subject = b.subject;
        ev.remaining = b.remaining;
        ev.duration = b.duration;
        publish(ev);
    }
    scanBans();
    scanConns();
    scanOwners();
    for (const SharedOwner& o : handler_.activeLocalOwners())
        pushOwner(o.clientId, o.identity, o.hold);
    ClusterEvent hb;
    hb.type = ClusterEvent::Type::Heartbeat;
    publish(hb);
}

// SCANs every key under <prefix><what>, calling onKey for each, page after page.
void ClusterState::scanKeys(const char* what, const std::string& cursor,
                            std::function<void(std::string_view key)> onKey,
                            std::shared_ptr<size_t> seen) {
    if (!seen) seen = std::make_shared<size_t>(0);
    redis_->command(
        {"SCAN", cursor, "MATCH", scanPattern(config_.keyPrefix, what), "COUNT", kScanCount},
        [this, what, onKey = std::move(onKey), seen](const redisReply* r) {
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                syncError();
                return;
            }
            const redisReply* keys = r->element[1];
            for (size_t i = 0; i < keys->elements && *seen < kMaxScanKeys; ++i, ++*seen)
                onKey(str(keys->element[i]));
            std::string next(str(r->element[0]));
            if (*seen >= kMaxScanKeys) {
                remoteDropped_->Increment();  // the rest is not looked at
                return;
            }
            if (!next.empty() && next != "0") scanKeys(what, next, onKey, seen);
        });
}

void ClusterState::ownerChanged(const std::string& clientId, const std::string& identity,
                                milliseconds hold) {
    LocalEvent e = makeEvent(LocalEvent::Type::Owner, SubjectKind::Identity, clientId);
    e.b = identity;
    e.remaining = hold;
    push(std::move(e));
}

void ClusterState::pushOwner(const std::string& clientId, const std::string& identity,
                             milliseconds hold) {
    const std::string key = ownerKey(config_.keyPrefix, clientId);
    auto onReply = [this](const redisReply* r) {
        if (isError(r)) syncError();
    };
    bool sent;
    if (hold.count() <= 0) {
        sent = redis_->command({"DEL", key}, onReply);
    } else {
        sent = redis_->command({"SET", key,
                                sealOwner(config_.key, key, identity,
                                          unixNowMs() + static_cast<uint64_t>(hold.count())),
                                "PX", std::to_string(hold.count())},
                               onReply);
    }
    if (!sent) syncError();
    ClusterEvent ev;
    ev.type = ClusterEvent::Type::Owner;
    ev.subject = clientId;
    ev.owner = identity;
    ev.remaining = std::max(hold, milliseconds(0));
    publish(ev);
}

void ClusterState::scanOwners() {
    scanKeys("owner:", "0", [this](std::string_view k) {
        std::string key(k);
        auto clientId = parseOwnerKey(config_.keyPrefix, key);
        if (!clientId) return;
        redis_->command({"EVAL", kReadOwner, "1", key}, [this, clientId, key](const redisReply* v) {
            const auto ttl = liveTtl(v);
            if (!ttl) return;
            OwnerRecord rec = openOwner(str(v->element[1]), config_.key, key);
            if (rec.result != Authenticity::Ok) {
                rejected(recordsRejected_, rec.result);
                return;
            }
            const auto left = timeLeft(*ttl, rec.endUnixMs);
            if (!left) return;
            handler_.onSharedOwner(*clientId, rec.identity, milliseconds(*left));
        });
    });
}

void ClusterState::scanBans() {
    scanKeys("ban:", "0", [this](std::string_view k) {
        std::string key(k);
        auto parsed = parseBanKey(config_.keyPrefix, key);
        if (!parsed) return;
        if (parsed->kind == SubjectKind::Ip && !isIpLiteral(parsed->subject)) {
            rejected(recordsRejected_, Authenticity::Malformed);
            return;
        }
        redis_->command({"EVAL", kReadBan, "1", key}, [this, parsed, key](const redisReply* v) {
            const auto ttl = liveTtl(v);
            if (!ttl) return;
            BanRecord rec = openBan(str(v->element[1]), config_.key, key);
            if (rec.result != Authenticity::Ok) {
                rejected(recordsRejected_, rec.result);
                return;
            }
            // BanTable::adopt then clamps the time left to bans.max_duration.
            const auto left = timeLeft(*ttl, rec.endUnixMs);
            if (!left) return;
            handler_.onSharedBan(parsed->kind, parsed->subject, milliseconds(*left),
                                 milliseconds(rec.durationMs));
        });
    });
}

void ClusterState::scanConns() {
    scanKeys("conn:", "0", [this](std::string_view key) {
        auto replica = parseConnKey(config_.keyPrefix, key);
        if (replica && *replica != replica_) fetchReplica(*replica);
    });
}

// Replaces what is known of one replica's connections with its hash in Redis.
void ClusterState::fetchReplica(const std::string& replica) {
    if (!remote_.touch(replica, uv_now(loop_))) {
        remoteDropped_->Increment();
        return;
    }
    std::string hash = connKey(config_.keyPrefix, replica);
    const std::string maxFields = std::to_string(RemoteLimits{}.maxEntries);
    redis_->command(
        {"EVAL", kReadConns, "1", hash, maxFields}, [this, replica, hash](const redisReply* r) {
            if (r && r->type == REDIS_REPLY_ERROR) {
                rejected(recordsRejected_, Authenticity::Malformed);  // too large to be real
                return;
            }
            if (!r || r->type != REDIS_REPLY_ARRAY) {
                syncError();
                return;
            }
            if (!remote_.known(replica)) return;  // forgotten meanwhile
            std::unordered_map<std::string, uint32_t> fresh;
            const size_t maxFields = RemoteLimits{}.maxEntries;
            for (size_t i = 0; i + 1 < r->elements && fresh.size() < maxFields; i += 2) {
                std::string ip(str(r->element[i]));
                if (!isIpLiteral(ip)) {
                    rejected(recordsRejected_, Authenticity::Malformed);
                    continue;
                }
                ConnRecord rec = openConn(str(r->element[i + 1]), config_.key, hash, ip);
                if (rec.result != Authenticity::Ok) {
                    rejected(recordsRejected_, rec.result);
                    continue;
                }
                if (rec.count > 0) fresh[ip] = rec.count;
            }
            remote_.replace(replica, fresh, uv_now(loop_));
            updateRemoteGauges();
        });
}

// ---------------------------------------------------------------- events from others

void ClusterState::onMessage(std::string_view payload) {
    OpenedEvent opened = openEvent(payload, config_.key, unixNowMs());
    if (opened.result != Authenticity::Ok) {
        rejected(eventsRejected_, opened.result);
        return;
    }
    auto event = decodeEvent(opened.line);
    if (!event) {
        rejected(eventsRejected_, Authenticity::Malformed);
        syncError();
        return;
    }
    if (event->replica == replica_) return;
    // An IP subject is an address literal, nothing else (bounded, and never a fake key).
    if ((event->type == ClusterEvent::Type::Conn ||
         (event->type == ClusterEvent::Type::Ban && event->kind == SubjectKind::Ip)) &&
        !isIpLiteral(event->subject)) {
        eventsRejected_->Add({{"reason", "invalid"}}).Increment();
        return;
    }
    eventCounter("received", eventTypeName(event->type)).Increment();
    uint64_t now = uv_now(loop_);
    if (!remote_.known(event->replica)) {
        fetchReplica(event->replica);
        if (!remote_.known(event->replica)) return;  // no room for another replica
    }
    remote_.touch(event->replica, now);
    switch (event->type) {
        case ClusterEvent::Type::Ban:
            handler_.onSharedBan(event->kind, event->subject, event->remaining, event->duration);
            break;
        case ClusterEvent::Type::Kick:
            handler_.onKick(event->subject, event->fingerprint, event->reason);
            break;
        case ClusterEvent::Type::Conn:
            setRemote(event->replica, event->subject, event->connections, now);
            if (event->accepted > 0) handler_.onRemoteAccepts(event->subject, event->accepted);
            break;
        case ClusterEvent::Type::Heartbeat:
            break;
        case ClusterEvent::Type::Owner:
            handler_.onSharedOwner(event->subject, event->owner, event->remaining);
            break;
    }
    updateRemoteGauges();
}

void ClusterState::setRemote(const std::string& replica, const std::string& ip, uint32_t count,
                             uint64_t nowMs) {
    if (!remote_.set(replica, ip, count, nowMs)) remoteDropped_->Increment();
    updateRemoteGauges();
}

void ClusterState::forgetReplica(const std::string& replica) {
    remote_.forget(replica);
    updateRemoteGauges();
}

void ClusterState::clearRemote() {
    remote_.clear();
    updateRemoteGauges();
}

void ClusterState::updateRemoteGauges() {
    remoteConnectionsGauge_->Set(static_cast<double>(remote_.total()));
    replicasGauge_->Set(static_cast<double>(remote_.replicas()));
}

void ClusterState::onHeartbeat(uv_timer_t* t) {
    auto* self = static_cast<ClusterState*>(t->data);
    if (!self->redis_ || !self->redis_->up()) return;
    uint64_t now = uv_now(self->loop_);
    self->redis_->command({"PEXPIRE", self->ownConnKey_, std::to_string(kReplicaTtlMs)});
    ClusterEvent hb;
    hb.type = ClusterEvent::Type::Heartbeat;
    self->publish(hb);
    for (const auto& id : self->remote_.silent(now, kReplicaTtlMs)) self->forgetReplica(id);
}

}  // namespace moat::cluster
