// The gateway's side of the cluster (config `cluster:`): what is shared when this replica
// bans or kicks, and what it does with what the other replicas shared. Main loop thread,
// except banMade() and shareKick() (any thread: ClusterState queues).

#include <chrono>

#include "gateway/mqtt/Types.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/Worker.h"

namespace moat::net {

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inspect::Ban::Kind banKind(cluster::SubjectKind k) {
    return k == cluster::SubjectKind::Ip ? inspect::Ban::Ip : inspect::Ban::Identity;
}

cluster::SubjectKind subjectKind(inspect::Ban::Kind k) {
    return k == inspect::Ban::Ip ? cluster::SubjectKind::Ip : cluster::SubjectKind::Identity;
}

uint8_t kickV5Reason(cluster::KickReason r) {
    return r == cluster::KickReason::Banned ? mqtt::reason::Banned
                                            : mqtt::reason::AdministrativeAction;
}

}  // namespace

void Gateway::startCluster() {
    const config::Config& cfg = *snapshot_->config;
    if (!cfg.cluster.redis) return;
    cluster::ClusterHandler& handler = *this;
    cluster_ = std::make_unique<cluster::ClusterState>(&loop_, cfg.cluster, cfg.bans,
                                                       metrics_.registry(), handler);
    MOAT_LOG_INFO("cluster: replica %s sharing state through redis %s (key prefix \"%s\")",
                  cluster_->replicaId().c_str(), cfg.cluster.redis->toString().c_str(),
                  cfg.cluster.keyPrefix.c_str());
    cluster_->start();
}

void Gateway::enforceBan(inspect::Ban::Kind kind, const std::string& subject,
                         std::string_view reason, milliseconds duration, const char* why) {
    const bool ip = kind == inspect::Ban::Ip;
    audit("ban", "", ip ? subject : "", "", ip ? "" : subject, "", "", "", "", reason,
          static_cast<uint64_t>(duration.count() / 1000));
    if (!ip) kickLocal(subject, "", cluster::KickReason::Banned, why);
}

void Gateway::banMade(const inspect::Ban& ban, std::string_view reason) {
    enforceBan(ban.kind, ban.subject, reason, ban.duration, "identity banned");
    if (cluster_) {
        auto remaining = std::chrono::duration_cast<milliseconds>(ban.until - SteadyClock::now());
        cluster_->banned(subjectKind(ban.kind), ban.subject, std::max(remaining, milliseconds(1)),
                         ban.duration);
    }
}

void Gateway::shareKick(const std::string& identity, const std::string& fingerprint,
                        cluster::KickReason reason) {
    if (cluster_ && !identity.empty()) cluster_->kick(identity, fingerprint, reason);
}

void Gateway::kickLocal(const std::string& identity, const std::string& fingerprint,
                        cluster::KickReason reason, const std::string& why) {
    uint8_t code = kickV5Reason(reason);
    for (auto& w : workers_)
        w->post([identity, fingerprint, code, why](Worker& wk) {
            wk.kick(identity, fingerprint, code, why);
        });
}

void Gateway::onSharedBan(cluster::SubjectKind kind, const std::string& subject,
                          milliseconds remaining, milliseconds duration) {
    auto now = SteadyClock::now();
    // Identities are never banned (CONTRACT §3: nobody can lock another identity out); an
    // identity ban from a replica of an older version only counts as pressure on it.
    if (kind == cluster::SubjectKind::Identity) {
        identityGuard_.notePressure(subject, now);
        return;
    }
    // adopt() holds the ban to this replica's bans.max_duration.
    if (!bans_.adopt(banKind(kind), subject, duration, now + remaining, now)) return;
    metrics_.bansActive().Set(static_cast<double>(bans_.activeBans(now)));
    auto held = bans_.activeBan(banKind(kind), subject, now);
    if (!held) return;
    enforceBan(banKind(kind), subject, "cluster",
               std::chrono::duration_cast<milliseconds>(held->until - now),
               "identity banned (cluster)");
}

void Gateway::onSharedFailureThreshold(cluster::SubjectKind kind, const std::string& subject) {
    auto now = SteadyClock::now();
    // The fleet-wide failures for an identity slow its checks here too; they never ban it.
    if (kind == cluster::SubjectKind::Identity) {
        identityGuard_.notePressure(subject, now);
        return;
    }
    std::optional<inspect::Ban> ban = bans_.impose(banKind(kind), subject, now);
    if (!ban) return;
    metrics_.bansActive().Set(static_cast<double>(bans_.activeBans(now)));
    banMade(*ban, "auth_failures");
}

void Gateway::onKick(const std::string& identity, const std::string& fingerprint,
                     cluster::KickReason reason) {
    kickLocal(identity, fingerprint, reason,
              std::string("kicked by another replica: ") + cluster::kickReasonName(reason));
}

void Gateway::onRemoteAccepts(const std::string& ip, uint32_t accepted) {
    admission_->chargeElsewhere(ip, accepted, SteadyClock::now());
}

void Gateway::onRedisState(bool up, const std::string& why) {
    if (up) {
        MOAT_LOG_INFO("cluster: redis %s reachable: sharing state with the other replicas",
                      snapshot_->config->cluster.redis->toString().c_str());
        audit("cluster", "", "", "", "", "", "", "", "", "redis up: shared limits");
    } else {
        MOAT_LOG_WARN("cluster: redis %s unreachable (%s): degraded to local-only limits",
                      snapshot_->config->cluster.redis->toString().c_str(), why.c_str());
        audit("cluster", "", "", "", "", "", "", "", "",
              "degraded: redis unreachable (" + why + "), local-only limits and client-id owners");
    }
}

std::vector<cluster::SharedBan> Gateway::activeLocalBans() {
    auto now = SteadyClock::now();
    std::vector<cluster::SharedBan> out;
    for (const inspect::Ban& b : bans_.activeBanList(now)) {
        // Only bans made here: re-pushing adopted ones would bring back a ban key deleted
        // from Redis (by an operator lifting it, or forged there in the first place).
        if (b.adopted) continue;
        auto remaining = std::chrono::duration_cast<milliseconds>(b.until - now);
        if (remaining.count() <= 0) continue;
        out.push_back({subjectKind(b.kind), b.subject, remaining, b.duration});
    }
    return out;
}

}  // namespace moat::net
