#pragma once
// Per-address anomaly events (`auth_failures`, `connection_storm`) on their way from the
// threads that see them (workers, password-check threads) to the one detector on the main
// loop (AddressAnomalies). SO_REUSEPORT spreads one address's connections over every worker,
// so only a process-wide view sees a storm or a password spray; taking that view must not
// make a worker wait, because whoever floods the gateway decides how often it is taken.
//
// A bounded multi-producer, single-consumer queue without locks (D. Vyukov's intrusive MPSC
// list): push() is one atomic exchange plus two counter updates, whatever the other threads
// do; drain() runs on the consumer's thread only. Each worker has its own queue, so workers
// do not even share a cache line here; other threads share one. A full queue drops the event
// and counts it (dropped()): it only delays an anomaly, it never blocks or grows without bound.
// Bans do not go through here: they are decided synchronously (see Gateway).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace moat::metrics {

struct AddressEvent {
    enum class Kind : uint8_t { AuthFailure, Connection };
    // Claimed identities longer than this are not tracked per identity (the address still
    // is), as in the ban table: a queue full of 64 KiB usernames would be 1 GiB.
    static constexpr size_t kMaxIdentity = 1024;

    Kind kind = Kind::Connection;
    std::string ip;
    std::string identity;  // AuthFailure: the claimed identity ("" when unknown)
    std::string listener;  // Connection: the listener that accepted it
    std::chrono::steady_clock::time_point at{};
};

class AddressEventQueue {
  public:
    static constexpr size_t kDefaultCapacity = 16384;

    explicit AddressEventQueue(size_t capacity = kDefaultCapacity)
        : capacity_(capacity), head_(&stub_), tail_(&stub_) {}
    AddressEventQueue(const AddressEventQueue&) = delete;
    AddressEventQueue& operator=(const AddressEventQueue&) = delete;
    ~AddressEventQueue() {
        drain([](AddressEvent&&) {});
        if (tail_ != &stub_) delete tail_;
    }

    // Any thread. False (and counted) when `capacity` events are waiting already.
    bool push(AddressEvent event) {
        if (size_.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
            size_.fetch_sub(1, std::memory_order_relaxed);
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        Node* node = new Node;
        node->event = std::move(event);
        Node* prev = head_.exchange(node, std::memory_order_acq_rel);
        // Between the exchange and this store the consumer sees the list end at prev: the
        // event is picked up by the next drain (the producer wakes the consumer after push).
        prev->next.store(node, std::memory_order_release);
        return true;
    }

    // Consumer thread only: calls fn(AddressEvent&&) for every event pushed so far, each
    // producer's events in the order it pushed them. Returns how many.
    template <typename Fn>
    size_t drain(Fn&& fn) {
        size_t n = 0;
        while (Node* next = tail_->next.load(std::memory_order_acquire)) {
            fn(std::move(next->event));
            // `next` becomes the new (empty) stub; the old one is freed.
            if (tail_ != &stub_) delete tail_;
            tail_ = next;
            size_.fetch_sub(1, std::memory_order_relaxed);
            ++n;
        }
        return n;
    }

    size_t size() const { return size_.load(std::memory_order_relaxed); }
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  private:
    struct Node {
        std::atomic<Node*> next{nullptr};
        AddressEvent event;
    };

    const size_t capacity_;
    Node stub_;
    alignas(64) std::atomic<Node*> head_;  // producers: the newest node
    alignas(64) Node* tail_;               // consumer: the last node consumed (or the stub)
    std::atomic<size_t> size_{0};
    std::atomic<uint64_t> dropped_{0};
};

}  // namespace moat::metrics
