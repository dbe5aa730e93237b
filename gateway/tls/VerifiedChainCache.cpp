#include "gateway/tls/VerifiedChainCache.h"

#include <atomic>
#include <cstring>

namespace moat::tls {

VerifiedChainCache& VerifiedChainCache::processWide() {
    // Never destroyed: an SSL_CTX freed during static destruction still drops its entries.
    static VerifiedChainCache* cache = new VerifiedChainCache(kProcessCapacity);
    return *cache;
}

uint64_t VerifiedChainCache::nextGeneration() {
    static std::atomic<uint64_t> last{0};
    return ++last;
}

VerifiedChainCache::VerifiedChainCache(size_t capacity) : capacity_(capacity) {
    index_.reserve(capacity < 1024 ? capacity : 1024);
}

size_t VerifiedChainCache::KeyHash::operator()(const Key& k) const {
    // The digest is already uniformly distributed: its first word is a good hash.
    uint64_t h;
    std::memcpy(&h, k.chain.data(), sizeof h);
    return static_cast<size_t>(h ^ (k.generation * 0x9E3779B97F4A7C15ull));
}

bool VerifiedChainCache::lookup(const Key& key, Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
        ++stats_.misses;
        return false;
    }
    const Entry& e = *it->second;
    if (now < e.notBefore || now >= e.expires) {
        lru_.erase(it->second);
        index_.erase(it);
        ++stats_.expired;
        ++stats_.misses;
        return false;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    ++stats_.hits;
    return true;
}

void VerifiedChainCache::insert(const Key& key, Clock::time_point notBefore,
                                Clock::time_point expires, Clock::time_point now) {
    if (capacity_ == 0 || now < notBefore || now >= expires) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
        it->second->notBefore = notBefore;
        it->second->expires = expires;
        lru_.splice(lru_.begin(), lru_, it->second);
        return;
    }
    if (index_.size() >= capacity_) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
        ++stats_.evictions;
    }
    lru_.push_front(Entry{key, notBefore, expires});
    index_.emplace(key, lru_.begin());
    ++stats_.inserts;
}

void VerifiedChainCache::dropGeneration(uint64_t generation) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end();) {
        if (it->key.generation == generation) {
            index_.erase(it->key);
            it = lru_.erase(it);
        } else {
            ++it;
        }
    }
}

void VerifiedChainCache::clear() {
    std::lock_guard<std::mutex> lock(mu_);
    lru_.clear();
    index_.clear();
}

VerifiedChainCache::Stats VerifiedChainCache::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    Stats s = stats_;
    s.size = index_.size();
    return s;
}

}  // namespace moat::tls
