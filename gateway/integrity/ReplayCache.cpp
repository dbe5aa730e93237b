#include "gateway/integrity/ReplayCache.h"

#include <algorithm>

namespace moat::integrity {

ReplayCache::ReplayCache(size_t capacity, size_t perIdentity)
    : capacity_(std::max<size_t>(capacity, 1)),
      perIdentity_(std::clamp<size_t>(perIdentity, 1, std::max<size_t>(capacity, 1))) {}

std::shared_ptr<ReplayCache> ReplayCache::processWide() {
    static const std::shared_ptr<ReplayCache> cache = std::make_shared<ReplayCache>();
    return cache;
}

void ReplayCache::purge(int64_t now) {
    while (!byExpiry_.empty() && byExpiry_.begin()->first < now) {
        auto it = seen_.find(byExpiry_.begin()->second);
        if (it != seen_.end()) {
            auto owner = it->second.owner;
            if (--owner->second == 0) perIdentityCount_.erase(owner);
            seen_.erase(it);
        }
        byExpiry_.erase(byExpiry_.begin());
    }
}

ReplayCache::Result ReplayCache::admit(std::span<const uint8_t> signature,
                                       std::string_view identity, int64_t now, int64_t expiresAt) {
    Digest d{};
    std::copy_n(signature.begin(), std::min(signature.size(), d.size()), d.begin());
    std::lock_guard<std::mutex> lock(mu_);
    purge(now);
    if (seen_.count(d)) return Result::Replayed;
    if (seen_.size() >= capacity_) return Result::Full;
    auto owner = perIdentityCount_.try_emplace(std::string(identity), 0).first;
    if (owner->second >= perIdentity_) return Result::Full;
    ++owner->second;
    seen_.emplace(d, Entry{expiresAt, owner});
    byExpiry_.emplace(expiresAt, d);
    return Result::Fresh;
}

size_t ReplayCache::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.size();
}

}  // namespace moat::integrity
