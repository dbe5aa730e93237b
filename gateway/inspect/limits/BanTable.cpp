#include "gateway/inspect/limits/BanTable.h"

#include <algorithm>

namespace moat::inspect {

using std::chrono::milliseconds;

BanTable::BanTable(const config::BansConfig& config, BanTableLimits limits)
    : config_(config), limits_(limits) {}

BanDecision BanTable::recordAuthFailure(std::string_view ip, std::string_view identity,
                                        SteadyTime now) {
    BanDecision decision;
    if (config_.authFailures == 0) return decision;
    if (!ip.empty()) decision.ip = recordOn(ips_, Ban::Ip, ip, now);
    // An oversized identity is not worth the memory; the IP side still counts the failure.
    if (!identity.empty() && identity.size() <= limits_.maxSubjectLength) {
        decision.identity = recordOn(identities_, Ban::Identity, identity, now);
    }
    return decision;
}

std::optional<Ban> BanTable::recordOn(Side& side, Ban::Kind kind, std::string_view key,
                                      SteadyTime now) {
    Subject* s = findOrInsert(side, key, now);
    if (s == nullptr) {
        ++untracked_;
        return std::nullopt;
    }
    if (bannedAt(*s, now)) return std::nullopt;
    pruneFailures(*s, now);
    s->failures.push_back(now);
    if (s->failures.size() < config_.authFailures) return std::nullopt;

    return banSubject(*s, kind, key, now);
}

// One more ban for `s` (strikes drive the doubling; forgotten after strikeMemory()).
uint32_t BanTable::strike(Subject& s, SteadyTime now) {
    s.failures.clear();
    if (s.hasBan && now >= s.forgetAt) s.strikes = 0;
    const uint32_t before = s.strikes;
    if (s.strikes < UINT32_MAX) ++s.strikes;
    return before;
}

void BanTable::setBan(Ban::Kind kind, Subject& s, milliseconds duration, SteadyTime until) {
    Side& sd = side(kind);
    unindexBan(sd, s);
    s.hasBan = true;
    s.adopted = false;
    s.duration = duration;
    s.bannedUntil = until;
    s.forgetAt = until + strikeMemory();
    indexBan(sd, s);
}

Ban BanTable::banSubject(Subject& s, Ban::Kind kind, std::string_view key, SteadyTime now) {
    const milliseconds duration = banDuration(strike(s, now));
    setBan(kind, s, duration, now + duration);
    return Ban{kind, std::string(key), duration, s.bannedUntil};
}

BanTable::Subject* BanTable::track(Ban::Kind kind, std::string_view subject, SteadyTime now) {
    if (subject.empty() || subject.size() > limits_.maxSubjectLength) return nullptr;
    Subject* s = findOrInsert(side(kind), subject, now);
    if (s == nullptr) ++untracked_;
    return s;
}

std::optional<Ban> BanTable::impose(Ban::Kind kind, std::string_view subject, SteadyTime now) {
    Subject* s = track(kind, subject, now);
    if (s == nullptr || bannedAt(*s, now)) return std::nullopt;
    return banSubject(*s, kind, subject, now);
}

bool BanTable::adopt(Ban::Kind kind, std::string_view subject, milliseconds duration,
                     SteadyTime until, SteadyTime now) {
    if (until <= now) return false;
    until = std::min(until, now + longestBan());
    duration = std::clamp(duration, milliseconds(0), longestBan());
    Subject* s = track(kind, subject, now);
    if (s == nullptr) return false;
    const bool active = bannedAt(*s, now);
    if (active && until <= s->bannedUntil) return false;
    if (!active) strike(*s, now);
    setBan(kind, *s, duration, until);
    s->adopted = true;
    return true;
}

milliseconds BanTable::longestBan() const {
    return std::max(config_.maxDuration, config_.duration);
}

std::vector<Ban> BanTable::activeBanList(SteadyTime now) const {
    std::vector<Ban> out;
    for (const auto* side : {&ips_, &identities_}) {
        for (const auto& [key, s] : side->map) {
            if (bannedAt(s, now))
                out.push_back(Ban{side == &ips_ ? Ban::Ip : Ban::Identity, key, s.duration,
                                  s.bannedUntil, s.adopted});
        }
    }
    return out;
}

BanTable::Subject* BanTable::findOrInsert(Side& side, std::string_view key, SteadyTime now) {
    if (auto it = side.map.find(key); it != side.map.end()) return &it->second;
    if (full(side, key.size())) makeRoom(side, key.size(), now);
    if (full(side, key.size())) return nullptr;  // only when the key alone exceeds the budget
    auto [it, inserted] = side.map.emplace(std::string(key), Subject{});
    side.keyBytes += key.size();
    it->second.key = &it->first;
    return &it->second;
}

bool BanTable::full(const Side& side, size_t extraKeyBytes) const {
    return side.map.size() >= limits_.maxSubjects ||
           side.keyBytes + extraKeyBytes > limits_.maxKeyBytes;
}

void BanTable::pruneFailures(Subject& s, SteadyTime now) const {
    const SteadyTime cutoff = now - config_.window;
    auto firstInWindow = std::find_if(s.failures.begin(), s.failures.end(),
                                      [cutoff](SteadyTime t) { return t > cutoff; });
    s.failures.erase(s.failures.begin(), firstInWindow);
}

bool BanTable::idle(Subject& s, SteadyTime now) const {
    if (bannedAt(s, now)) return false;
    pruneFailures(s, now);
    if (!s.failures.empty()) return false;
    return !s.hasBan || now >= s.forgetAt;
}

void BanTable::sweepSide(Side& side, SteadyTime now) {
    for (auto it = side.map.begin(); it != side.map.end();) {
        if (idle(it->second, now)) {
            erase(side, it++);
        } else {
            ++it;
        }
    }
}

// Under memory pressure, forget failure counts and strike history (never active bans) until a
// quarter of the budget is free, so the cost of this walk is amortised over many inserts.
void BanTable::evictUnbanned(Side& side, SteadyTime now) {
    const size_t targetSubjects = limits_.maxSubjects / 4 * 3;
    const size_t targetBytes = limits_.maxKeyBytes / 4 * 3;
    for (auto it = side.map.begin(); it != side.map.end();) {
        if (side.map.size() <= targetSubjects && side.keyBytes <= targetBytes) break;
        if (!bannedAt(it->second, now)) {
            erase(side, it++);
        } else {
            ++it;
        }
    }
}

milliseconds BanTable::banDuration(uint32_t strikes) const {
    const milliseconds cap = std::max(config_.maxDuration, config_.duration);
    milliseconds d = config_.duration;
    for (uint32_t i = 0; i < strikes && d < cap; ++i) d = std::min(cap, d * 2);
    return d;
}

milliseconds BanTable::strikeMemory() const {
    return std::max<milliseconds>(std::chrono::hours(24), config_.maxDuration * 4);
}

bool BanTable::isBanned(const Side& side, std::string_view key, SteadyTime now) {
    auto it = side.map.find(key);
    return it != side.map.end() && it->second.hasBan && now < it->second.bannedUntil;
}

bool BanTable::isIpBanned(std::string_view ip, SteadyTime now) const {
    return isBanned(ips_, ip, now);
}

bool BanTable::isIdentityBanned(std::string_view identity, SteadyTime now) const {
    return isBanned(identities_, identity, now);
}

std::optional<Ban> BanTable::activeBan(Ban::Kind kind, std::string_view subject,
                                       SteadyTime now) const {
    const Side& side = kind == Ban::Ip ? ips_ : identities_;
    auto it = side.map.find(subject);
    if (it == side.map.end() || !bannedAt(it->second, now)) return std::nullopt;
    return Ban{kind, it->first, it->second.duration, it->second.bannedUntil};
}

size_t BanTable::activeBans(SteadyTime now) const {
    return activeOn(ips_, now) + activeOn(identities_, now);
}

SteadyTime BanTable::latestBanEnd() const {
    SteadyTime latest{};
    for (const Side* sd : {&ips_, &identities_})
        if (!sd->expiries.empty()) latest = std::max(latest, sd->expiries.rbegin()->first);
    return latest;
}

// ---------------------------------------------------------------- capacity

void BanTable::indexBan(Side& sd, Subject& s) {
    if (s.indexed || !s.hasBan) return;
    sd.expiries.emplace(s.bannedUntil, &s);
    s.indexed = true;
}

void BanTable::unindexBan(Side& sd, Subject& s) {
    if (!s.indexed) return;
    sd.expiries.erase({s.bannedUntil, &s});
    s.indexed = false;
}

void BanTable::erase(Side& sd, Map::iterator it) {
    unindexBan(sd, it->second);
    sd.keyBytes -= it->first.size();
    sd.map.erase(it);
}

// Ended bans leave the index here, each once: the count stays O(1) amortised.
void BanTable::pruneEnded(const Side& sd, SteadyTime now) {
    while (!sd.expiries.empty() && sd.expiries.begin()->first <= now) {
        sd.expiries.begin()->second->indexed = false;
        sd.expiries.erase(sd.expiries.begin());
    }
}

size_t BanTable::activeOn(const Side& sd, SteadyTime now) const {
    pruneEnded(sd, now);
    return sd.expiries.size();
}

void BanTable::makeRoom(Side& sd, size_t extraKeyBytes, SteadyTime now) {
    // A walk over the whole side is only worth it when it frees a good part of it; a side
    // (nearly) full of active bans would otherwise be walked on every insert.
    const size_t unbanned = sd.map.size() - activeOn(sd, now);
    if (unbanned * 4 >= sd.map.size()) {
        sweepSide(sd, now);
        if (full(sd, extraKeyBytes)) evictUnbanned(sd, now);
    }
    // Still full of active bans: the one ending soonest goes (fail closed for new attackers
    // rather than refusing to track them).
    while (full(sd, extraKeyBytes) && evictSoonestBan(sd)) {
    }
}

bool BanTable::evictSoonestBan(Side& sd) {
    if (sd.expiries.empty()) return false;
    Subject* victim = sd.expiries.begin()->second;
    auto it = sd.map.find(*victim->key);
    if (it == sd.map.end()) return false;
    erase(sd, it);
    ++evictedBans_;
    return true;
}

void BanTable::sweep(SteadyTime now) {
    sweepSide(ips_, now);
    sweepSide(identities_, now);
}

void BanTable::updateConfig(const config::BansConfig& config) {
    config_ = config;
}

}  // namespace moat::inspect
