#include "gateway/inspect/OwnershipTable.h"

#include <algorithm>

namespace moat::inspect {

OwnershipTable::TimePoint OwnershipTable::holdEnd(const Entry& e) const {
    if (e.until) return *e.until;
    const Millis session = e.sessionExpiry == kNeverExpires
                               ? ttl_
                               : Millis(static_cast<int64_t>(e.sessionExpiry) * 1000);
    return e.releasedAt + std::min(session, ttl_);
}

bool OwnershipTable::held(const Entry& e, TimePoint now) const {
    return e.connections > 0 || holdEnd(e) > now;
}

OwnershipTable::Claim OwnershipTable::claim(std::string_view clientId, std::string_view identity,
                                            TimePoint now) {
    Claim out;
    auto it = entries_.find(std::string(clientId));
    if (it != entries_.end() && held(it->second, now) && it->second.identity != identity) {
        out.owner = it->second.identity;
        return out;
    }
    if (it == entries_.end()) {
        makeRoom(now);
        it = entries_.emplace(std::string(clientId), Entry{}).first;
    }
    Entry& e = it->second;
    const bool sameHolder = e.identity == identity && held(e, now);
    if (e.connections == 0) {
        // Fallback if this connection never reaches the broker: the hold it had before.
        e.priorEnd = sameHolder ? std::optional<TimePoint>(holdEnd(e)) : std::nullopt;
        // Kept until this connection ends (a release without the broker keeps them too).
        if (sameHolder)
            out.subscriptions = e.subscriptions;
        else
            e.subscriptions.clear();
    }
    e.identity.assign(identity);
    e.connections++;
    e.remote = false;
    e.until.reset();
    out.granted = true;
    return out;
}

void OwnershipTable::release(std::string_view clientId, std::string_view identity,
                             std::optional<uint32_t> sessionExpirySeconds, TimePoint now,
                             std::vector<std::string> subscriptions) {
    auto it = entries_.find(std::string(clientId));
    // An operator release or an adopted owner replaced this connection's claim: nothing to do.
    if (it == entries_.end() || it->second.identity != identity || it->second.connections == 0)
        return;
    Entry& e = it->second;
    if (--e.connections > 0) return;  // the same identity is still connected with this id
    e.releasedAt = now;
    e.until.reset();
    if (sessionExpirySeconds) {
        e.sessionExpiry = *sessionExpirySeconds;
        e.subscriptions = std::move(subscriptions);
    } else {
        e.sessionExpiry = 0;
        if (e.priorEnd) e.until = *e.priorEnd;
    }
    e.priorEnd.reset();
    if (!held(e, now)) entries_.erase(it);
}

void OwnershipTable::adopt(std::string_view clientId, std::string_view identity, Millis remaining,
                           TimePoint now) {
    auto it = entries_.find(std::string(clientId));
    if (it != entries_.end() && it->second.connections > 0) return;  // held here, connected
    if (remaining.count() <= 0) {
        // Released at the other replica: drop a hold of that identity (not one of another).
        if (it != entries_.end() && it->second.identity == identity) entries_.erase(it);
        return;
    }
    if (it == entries_.end()) {
        makeRoom(now);
        it = entries_.emplace(std::string(clientId), Entry{}).first;
    }
    Entry& e = it->second;
    e.identity.assign(identity);
    e.connections = 0;
    e.remote = true;
    e.subscriptions.clear();  // unknown here: counted from the next connection on
    e.releasedAt = now;
    e.until = now + std::min(remaining, ttl_);
    e.priorEnd.reset();
}

bool OwnershipTable::forceRelease(std::string_view clientId) {
    return entries_.erase(std::string(clientId)) > 0;
}

std::optional<OwnershipTable::Owner> OwnershipTable::owner(std::string_view clientId,
                                                           TimePoint now) const {
    auto it = entries_.find(std::string(clientId));
    if (it == entries_.end() || !held(it->second, now)) return std::nullopt;
    const Entry& e = it->second;
    Owner o;
    o.clientId = it->first;
    o.identity = e.identity;
    o.connections = e.connections;
    o.remote = e.remote;
    if (e.connections == 0) o.remaining = std::chrono::duration_cast<Millis>(holdEnd(e) - now);
    return o;
}

OwnershipTable::Millis OwnershipTable::shareableHold(std::string_view clientId,
                                                     TimePoint now) const {
    auto o = owner(clientId, now);
    if (!o) return Millis{0};
    return o->connections > 0 ? ttl_ : o->remaining;
}

std::vector<OwnershipTable::Owner> OwnershipTable::list(TimePoint now) const {
    std::vector<Owner> out;
    for (const auto& [clientId, e] : entries_) {
        (void)e;
        if (auto o = owner(clientId, now)) out.push_back(std::move(*o));
    }
    std::sort(out.begin(), out.end(),
              [](const Owner& a, const Owner& b) { return a.clientId < b.clientId; });
    return out;
}

size_t OwnershipTable::expire(TimePoint now) {
    return std::erase_if(entries_, [&](const auto& kv) { return !held(kv.second, now); });
}

// The table is bounded: at the cap, expired holds go first, then the released hold that ends
// soonest. Connected holders are never evicted (they are bounded by max_connections).
void OwnershipTable::makeRoom(TimePoint now) {
    if (entries_.size() < maxEntries_) return;
    expire(now);
    if (entries_.size() < maxEntries_) return;
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->second.connections > 0) continue;
        if (victim == entries_.end() || holdEnd(it->second) < holdEnd(victim->second)) victim = it;
    }
    if (victim != entries_.end()) entries_.erase(victim);
}

}  // namespace moat::inspect
