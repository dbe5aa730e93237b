#pragma once
// One event loop on one thread. A connection lives on one worker for life, so nothing on
// the data path is shared between threads (no locks). Workers get work from the main
// thread (reload, shutdown) through post(), which wakes the loop with a uv_async_t.

#include <uv.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gateway/metrics/AddressEventQueue.h"
#include "gateway/metrics/TopicScanDetector.h"
#include "gateway/metrics/TrafficCounters.h"
#include "gateway/net/Snapshot.h"

namespace moat::net {

class Gateway;
class ClientConnection;
struct WorkerListener;

// Per-worker traffic counters, summed at scrape time (metrics/TrafficCounters.h): the data
// path does single-writer increments instead of atomics on shared cache lines.
using TrafficCounters = metrics::TrafficCounters;

class Worker {
  public:
    Worker(Gateway& gateway, int index, std::shared_ptr<const Snapshot> snapshot);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Adopts an already bound listening socket (SO_REUSEPORT: one per worker and listener).
    void addListener(const config::ListenerConfig& listener, int fd);
    void start();
    void join();
    // Runs fn on this worker's loop thread.
    void post(std::function<void(Worker&)> fn);

    // The worker whose loop runs on the calling thread; null on any other thread.
    static Worker* current();

    // --- used by connections (loop thread only)
    uv_loop_t* loop() { return &loop_; }
    Gateway& gateway() { return gateway_; }
    int index() const { return index_; }
    const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
    void setSnapshot(std::shared_ptr<const Snapshot> s);
    TrafficCounters& traffic() { return traffic_; }
    // Scratch space for socket reads and TLS plaintext: consumed before the next read.
    uv_buf_t readBuffer();
    std::vector<uint8_t>& plaintextScratch() { return plaintext_; }
    void attach(ClientConnection* c);
    void detach(ClientConnection* c);
    uint64_t nextConnectionId() { return (uint64_t(index_) << 48) | ++connectionSeq_; }
    size_t connectionCount() const { return connections_.size(); }
    // `topic_scan` state of this worker's connections: per connection, so no other worker
    // needs it and no lock guards it (loop thread only).
    metrics::TopicScanDetector& topicScans() { return topicScans_; }
    // This worker's per-address anomaly events, drained by the main loop (any thread may
    // read the counters; only the main loop drains).
    metrics::AddressEventQueue& addressEvents() { return addressEvents_; }

    // SIGTERM: stop accepting, ask every connection to drain, stop the loop when empty or
    // at the deadline.
    void beginShutdown(uint64_t drainTimeoutMs);
    // Disconnects this worker's sessions of `identity` (see ClientConnection::kick); returns
    // how many. Loop thread (post() it).
    size_t kick(const std::string& identity, const std::string& fingerprint, uint8_t v5Reason,
                const std::string& why);

  private:
    void run();
    void applyScheduler();
    void stopAccepting();
    void maybeFinishShutdown();
    static void onAsync(uv_async_t* h);
    static void onListenerReadable(uv_poll_t* h, int status, int events);
    static void onAcceptResume(uv_timer_t* t);
    void accepted(WorkerListener& l, int fd, const sockaddr_storage& peer);
    static void onDrainTimer(uv_timer_t* t);
    static void onSweepTimer(uv_timer_t* t);

    Gateway& gateway_;
    int index_;
    std::shared_ptr<const Snapshot> snapshot_;
    uv_loop_t loop_{};
    uv_async_t async_{};
    uv_timer_t drainTimer_{};
    uv_timer_t sweepTimer_{};
    uv_tcp_t firstStream_{};  // see the constructor
    std::thread thread_;
    std::mutex postMutex_;
    std::vector<std::function<void(Worker&)>> posted_;
    std::vector<std::unique_ptr<WorkerListener>> listeners_;
    std::vector<ClientConnection*> connections_;
    TrafficCounters traffic_;
    metrics::TopicScanDetector topicScans_;
    metrics::AddressEventQueue addressEvents_;
    std::unique_ptr<uint8_t[]> readBuffer_;
    std::vector<uint8_t> plaintext_;
    uint64_t connectionSeq_ = 0;
    bool shuttingDown_ = false;
    std::optional<config::TuningConfig::Scheduler> scheduler_;  // applied to this thread
};

// A listening socket on one worker. The worker accepts from it itself (uv_poll_t, not
// uv_listen), so a connection admission control refuses costs accept4 + close and nothing
// else: no libuv handle, no getpeername, no socket options, no epoll registration.
struct WorkerListener {
    uv_poll_t poll{};
    uv_timer_t resume{};  // accepting paused after EMFILE / ENFILE, resumed by this timer
    int fd = -1;
    Worker* worker = nullptr;
    std::string name;
    bool tls = false;
};

}  // namespace moat::net
