#include "gateway/inspect/SubscriptionTable.h"

namespace moat::inspect {

void SubscriptionTable::subscribeSent(uint16_t id, const std::vector<std::string>& filters) {
    std::vector<PendingFilter> pending;
    pending.reserve(filters.size());
    for (const auto& f : filters) {
        auto [it, added] = filters_.try_emplace(f);
        if (added) it->second.serial = nextSerial_++;
        ++it->second.pending;
        pending.push_back({f, it->second.serial, added});
    }
    pendingFilters_ += pending.size();
    subscribes_[id] = std::move(pending);
}

bool SubscriptionTable::subackReceived(uint16_t id, const std::vector<uint8_t>& codes) {
    auto it = subscribes_.find(id);
    if (it == subscribes_.end()) return false;
    for (size_t i = 0; i < it->second.size(); ++i) {
        const PendingFilter& p = it->second[i];
        auto entry = filters_.find(p.filter);
        // Revoked (and unsubscribed) since, or a newer entry of the same name: not this one's.
        if (entry == filters_.end() || entry->second.serial != p.serial) continue;
        if (entry->second.pending > 0) --entry->second.pending;
        // A refusal (a missing code is one) undoes what this SUBSCRIBE added, unless another
        // SUBSCRIBE of the filter is still in flight (then the broker may yet grant it).
        const bool refused = i >= codes.size() || codes[i] >= 0x80;
        if (refused && p.added && entry->second.pending == 0) filters_.erase(entry);
    }
    pendingFilters_ -= it->second.size();
    subscribes_.erase(it);
    return true;
}

void SubscriptionTable::unsubscribeSent(uint16_t id, const std::vector<std::string>& filters) {
    for (const auto& f : filters) filters_.erase(f);
    unsubscribes_.insert(id);
}

std::vector<std::string> SubscriptionTable::revoke(
    const std::function<bool(const std::string&)>& allowed) {
    std::vector<std::string> revoked;
    for (auto it = filters_.begin(); it != filters_.end();) {
        if (allowed(it->first)) {
            ++it;
            continue;
        }
        revoked.push_back(it->first);
        it = filters_.erase(it);
    }
    return revoked;
}

void SubscriptionTable::adopt(const std::vector<std::string>& filters) {
    for (const auto& f : filters) {
        auto [it, added] = filters_.try_emplace(f);
        if (added) it->second.serial = nextSerial_++;
    }
}

std::vector<std::string> SubscriptionTable::filters() const {
    std::vector<std::string> out;
    out.reserve(filters_.size());
    for (const auto& [f, e] : filters_) out.push_back(f);
    return out;
}

}  // namespace moat::inspect
