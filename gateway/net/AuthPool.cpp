#include "gateway/net/AuthPool.h"

#include <openssl/crypto.h>

namespace moat::net {

AuthPool::AuthPool(size_t threads, size_t capacity, std::function<bool(const std::string&)> banned)
    : banned_(std::move(banned)), queue_(capacity) {
    if (threads == 0) threads = 1;
    threads_.reserve(threads);
    alive_ = threads;
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

AuthPool::~AuthPool() {
    stop(std::chrono::hours(1));
}

void AuthPool::finish(Job& job, Result r) {
    OPENSSL_cleanse(job.password.data(), job.password.size());
    job.password.clear();
    auto done = std::move(job.done);
    if (done) done(r);
}

void AuthPool::submit(Job job) {
    inspect::FairQueue<Job>::Push pushed;
    std::string ip = job.ip;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            pushed.queued = false;
        } else {
            pushed = queue_.push(ip, std::move(job));
        }
    }
    if (pushed.queued) {
        wake_.notify_one();
        if (pushed.evicted) finish(*pushed.evicted, Result::Evicted);
        return;
    }
    // Not queued: push() leaves the job untouched when it refuses.
    finish(job, Result::Refused);
}

bool AuthPool::cancel(const std::string& ip, uint64_t id) {
    std::optional<Job> job;
    {
        std::lock_guard lock(mutex_);
        job = queue_.remove(ip, [id](const Job& j) { return j.id == id; });
    }
    if (!job) return false;
    finish(*job, Result::Cancelled);
    return true;
}

void AuthPool::run() {
    for (;;) {
        std::optional<std::pair<std::string, Job>> next;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) break;
            next = queue_.pop();
            if (next) ++running_;
        }
        if (!next) continue;
        Job& job = next->second;
        // The job's turn: what was true when it was queued may not be any more.
        Result r;
        if (banned_ && banned_(job.ip)) {
            r = Result::Banned;
        } else if (Clock::now() >= job.deadline) {
            r = Result::Expired;
        } else if (job.work) {
            r = job.work();
        } else {
            switch (job.passwords->verify(job.user, job.password)) {
                case policy::PasswordFile::Verify::Ok:
                    r = Result::Ok;
                    break;
                case policy::PasswordFile::Verify::BadPassword:
                    r = Result::BadPassword;
                    break;
                default:
                    r = Result::UnknownUser;
                    break;
            }
        }
        {
            std::lock_guard done(doneMutex_);
            bool stopped;
            {
                std::lock_guard lock(mutex_);
                stopped = stopping_;
            }
            if (stopped) {
                // The gateway is going away: nobody is left to hear about it.
                OPENSSL_cleanse(job.password.data(), job.password.size());
            } else {
                finish(job, r);
            }
        }
        std::lock_guard lock(mutex_);
        --running_;
        idle_.notify_all();
    }
    std::lock_guard lock(mutex_);
    --alive_;
    idle_.notify_all();
}

bool AuthPool::stop(std::chrono::milliseconds grace) {
    std::vector<Job> left;
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && threads_.empty()) return true;
        stopping_ = true;
        queue_.drain([&left](Job&& j) { left.push_back(std::move(j)); });
    }
    wake_.notify_all();
    for (auto& j : left) finish(j, Result::Cancelled);
    bool allDone;
    {
        std::unique_lock lock(mutex_);
        allDone = idle_.wait_for(lock, grace, [this] { return alive_ == 0; });
    }
    // No done() is running past this point, and none will start (stopping_ is set).
    { std::lock_guard done(doneMutex_); }
    for (auto& t : threads_) {
        if (allDone) {
            t.join();
        } else {
            t.detach();
        }
    }
    threads_.clear();
    return allDone;
}

size_t AuthPool::queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

const char* AuthPool::resultName(Result r) {
    switch (r) {
        case Result::Ok:
            return "ok";
        case Result::BadPassword:
            return "bad password";
        case Result::UnknownUser:
            return "unknown user";
        case Result::Banned:
            return "banned while queued";
        case Result::Expired:
            return "handshake_timeout passed while queued";
        case Result::Refused:
            return "password check queue full";
        case Result::Evicted:
            return "password check queue full (evicted)";
        case Result::Cancelled:
            return "connection closed while queued";
    }
    return "?";
}

}  // namespace moat::net
