#pragma once
// A bounded map that evicts its least recently used entry: the memory bound of every per-IP /
// per-identity / per-connection table an attacker can grow (one entry per spoofed source).
// Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace moat::metrics {

template <typename Key, typename Value>
class LruMap {
  public:
    // String keys are looked up by string_view (the index points into the list's own copy).
    using KeyView = std::conditional_t<std::is_same_v<Key, std::string>, std::string_view, Key>;

    explicit LruMap(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
    LruMap(const LruMap&) = delete;
    LruMap& operator=(const LruMap&) = delete;

    // The entry for `key`, created with `init` if missing (evicting the least recently used
    // entry when full), and marked most recently used.
    template <typename Init>
    Value& touch(KeyView key, Init&& init) {
        if (auto it = index_.find(key); it != index_.end()) {
            order_.splice(order_.end(), order_, it->second);
            return it->second->second;
        }
        if (index_.size() >= capacity_) {
            index_.erase(KeyView(order_.front().first));
            order_.pop_front();
            ++evictions_;
        }
        order_.emplace_back(Key(key), init());
        auto last = std::prev(order_.end());
        index_.emplace(KeyView(last->first), last);
        return last->second;
    }

    Value* find(KeyView key) {
        auto it = index_.find(key);
        return it == index_.end() ? nullptr : &it->second->second;
    }

    void erase(KeyView key) {
        if (auto it = index_.find(key); it != index_.end()) {
            order_.erase(it->second);
            index_.erase(it);
        }
    }

    // Drops least recently used entries for as long as `stale(value)` holds.
    template <typename Pred>
    void evictWhile(Pred&& stale) {
        while (!order_.empty() && stale(order_.front().second)) {
            index_.erase(KeyView(order_.front().first));
            order_.pop_front();
        }
    }

    size_t size() const { return index_.size(); }
    size_t capacity() const { return capacity_; }
    uint64_t evictions() const { return evictions_; }

  private:
    using List = std::list<std::pair<Key, Value>>;
    size_t capacity_;
    List order_;  // front = least recently used
    std::unordered_map<KeyView, typename List::iterator> index_;
    uint64_t evictions_ = 0;
};

}  // namespace moat::metrics
