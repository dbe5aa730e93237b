#pragma once
// The password-check threads (PBKDF2). Their own threads, not libuv's thread pool: that pool
// (4 threads per process) also runs reloads and DNS, and a login flood with expensive hashes
// would hold every one of its threads, so a reload waited for the flood.
//
// Jobs wait in a bounded FairQueue (round-robin across source addresses). Whatever happens
// to a job, its `done` is called exactly once, on some thread (a pool thread, or the caller
// of submit()/cancel()):
//
//   Ok / BadPassword / UnknownUser   the check ran
//   Banned     the address was banned while the job waited: not run
//   Expired    its deadline (handshake_timeout) passed while it waited: not run
//   Refused    the queue was full when it was submitted (CONNACK 0x89)
//   Evicted    a quieter address took its place in a full queue (CONNACK 0x89)
//   Cancelled  the connection went away while it waited (e.g. handshake timeout)
//
// Worker threads loop over the queue; nothing is handed from job to job by recursion.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/inspect/limits/FairQueue.h"
#include "policy/PasswordFile.h"

namespace moat::net {

class AuthPool {
  public:
    enum class Result {
        Ok,
        BadPassword,
        UnknownUser,
        Banned,
        Expired,
        Refused,
        Evicted,
        Cancelled
    };
    using Clock = std::chrono::steady_clock;

    struct Job {
        uint64_t id = 0;  // from nextId(); what cancel() names
        std::string ip;
        std::string user;
        std::string password;  // wiped once checked (or dropped)
        std::shared_ptr<const policy::PasswordFile> passwords;
        Clock::time_point deadline{Clock::time_point::max()};
        // Set: run this instead of the password check (token verification, issue #24); it
        // keeps its own result and answers Ok. Same queue, fairness, bans and deadlines.
        std::function<Result()> work;
        std::function<void(Result)> done;
    };

    // `banned(ip)` is asked when a job's turn comes (thread-safe, any pool thread).
    AuthPool(size_t threads, size_t capacity, std::function<bool(const std::string&)> banned);
    ~AuthPool();
    AuthPool(const AuthPool&) = delete;
    AuthPool& operator=(const AuthPool&) = delete;

    uint64_t nextId() { return nextId_.fetch_add(1, std::memory_order_relaxed) + 1; }
    // Queues the job (its done() may run before this returns: Refused, or on a pool thread).
    void submit(Job job);
    // Takes a still-queued job out (done(Cancelled), before this returns). A job already
    // running finishes and reports as usual. False when it was not queued.
    bool cancel(const std::string& ip, uint64_t id);
    // Queued jobs get Cancelled; no done() runs after this returns. Waits up to `grace` for
    // the running checks (one PBKDF2 cannot be interrupted); threads still busy then are
    // detached and false is returned: the pool must then outlive them (the process is
    // exiting: leak it).
    bool stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

    size_t queued() const;
    size_t threads() const { return threads_.size(); }
    static const char* resultName(Result r);

  private:
    void run();
    static void finish(Job& job, Result r);

    std::function<bool(const std::string&)> banned_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;  // a thread finished its job or exited
    size_t running_ = 0;            // threads inside a check
    size_t alive_ = 0;              // threads not yet returned from run()
    std::mutex doneMutex_;          // held while a done() runs; stop() waits on it
    inspect::FairQueue<Job> queue_;
    bool stopping_ = false;
    std::atomic<uint64_t> nextId_{0};
    std::vector<std::thread> threads_;
};

}  // namespace moat::net
