#pragma once
// A bounded queue that is fair per source address: what waits for the password-check threads
// (AuthPool). Pure bookkeeping, no threads, no clock: the caller locks.
//
// - Service is round-robin across addresses: pop() takes the oldest job of the address whose
//   turn it is, then that address goes to the back of the ring. One address with a thousand
//   queued CONNECTs delays another address's login by one job, not by a thousand.
// - Within an address, first come, first served.
// - The queue holds at most `capacity` jobs. When it is full, a newcomer whose address has
//   fewer jobs queued than the address holding the most (by two or more) takes the place of
//   that address's newest job, which is handed back as evicted; otherwise the newcomer is
//   refused. So a flood from some addresses cannot keep a quiet address out.
// - Everything is iterative: no call recurses, whatever the queue length.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "gateway/inspect/limits/KeyedHash.h"

namespace moat::inspect {

template <typename Job>
class FairQueue {
  public:
    explicit FairQueue(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

    struct Push {
        bool queued = false;         // false: refused, the queue is full
        std::optional<Job> evicted;  // the job that made room for this one
    };

    // Takes the job only when it is queued (a refused job is left as it was).
    Push push(std::string_view key, Job&& job) {
        Push out;
        if (size_ >= capacity_) {
            auto own = queues_.find(key);
            const size_t ownCount = own == queues_.end() ? 0 : own->second.size();
            auto longest = queues_.end();
            for (auto it = queues_.begin(); it != queues_.end(); ++it) {
                if (longest == queues_.end() || it->second.size() > longest->second.size())
                    longest = it;
            }
            if (longest == queues_.end() || longest->second.size() < ownCount + 2) return out;
            out.evicted = std::move(longest->second.back());
            longest->second.pop_back();
            --size_;
            // A non-empty queue stays in the ring: the longest one keeps at least one job.
        }
        auto [it, inserted] = queues_.try_emplace(std::string(key));
        if (it->second.empty()) ring_.push_back(it->first);
        it->second.push_back(std::move(job));
        ++size_;
        out.queued = true;
        return out;
    }

    // The next job in round-robin order, with its key; nullopt when empty.
    std::optional<std::pair<std::string, Job>> pop() {
        while (!ring_.empty()) {
            std::string key = std::move(ring_.front());
            ring_.pop_front();
            auto it = queues_.find(key);
            if (it == queues_.end())
                continue;  // cannot happen: keys leave the ring with their queue
            Job job = std::move(it->second.front());
            it->second.pop_front();
            --size_;
            if (it->second.empty()) {
                queues_.erase(it);
            } else {
                ring_.push_back(key);
            }
            return std::make_pair(std::move(key), std::move(job));
        }
        return std::nullopt;
    }

    // Removes the first job of `key` for which pred(job) holds; returns it.
    template <typename Pred>
    std::optional<Job> remove(std::string_view key, Pred pred) {
        auto it = queues_.find(key);
        if (it == queues_.end()) return std::nullopt;
        for (auto j = it->second.begin(); j != it->second.end(); ++j) {
            if (!pred(*j)) continue;
            Job job = std::move(*j);
            it->second.erase(j);
            --size_;
            if (it->second.empty()) {
                queues_.erase(it);
                for (auto r = ring_.begin(); r != ring_.end(); ++r) {
                    if (*r == key) {
                        ring_.erase(r);
                        break;
                    }
                }
            }
            return job;
        }
        return std::nullopt;
    }

    // Takes every job out (shutdown), in no particular order.
    template <typename F>
    void drain(F&& f) {
        for (auto& [key, q] : queues_) {
            for (auto& job : q) f(std::move(job));
        }
        queues_.clear();
        ring_.clear();
        size_ = 0;
    }

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    size_t capacity() const { return capacity_; }
    size_t queuedFor(std::string_view key) const {
        auto it = queues_.find(key);
        return it == queues_.end() ? 0 : it->second.size();
    }

  private:
    size_t capacity_;
    size_t size_ = 0;
    std::unordered_map<std::string, std::deque<Job>, KeyedHash, std::equal_to<>> queues_;
    std::deque<std::string> ring_;  // keys with queued jobs, in service order
};

}  // namespace moat::inspect
