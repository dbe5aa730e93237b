#include "gateway/net/Worker.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"

namespace moat::net {

namespace {
constexpr size_t kReadBufferSize = 64 * 1024;
// Drops the topic-scan state of connections that stopped being denied (closed ones are
// forgotten at once).
constexpr uint64_t kSweepEveryMs = 5000;
thread_local Worker* t_current = nullptr;
}  // namespace

Worker* Worker::current() {
    return t_current;
}

Worker::Worker(Gateway& gateway, int index, std::shared_ptr<const Snapshot> snapshot)
    : gateway_(gateway),
      index_(index),
      snapshot_(std::move(snapshot)),
      topicScans_(snapshot_->config->anomaly),
      readBuffer_(new uint8_t[kReadBufferSize]) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &async_, onAsync);
    async_.data = this;
    gateway_.metrics().traffic().attach(&traffic_);
    uv_timer_init(&loop_, &drainTimer_);
    drainTimer_.data = this;
    uv_timer_init(&loop_, &sweepTimer_);
    sweepTimer_.data = this;
}

Worker::~Worker() {
    if (thread_.joinable()) thread_.join();
    gateway_.metrics().traffic().detach(&traffic_);
    uv_loop_close(&loop_);
}

void Worker::addListener(const config::ListenerConfig& cfg, int fd) {
    auto l = std::make_unique<WorkerListener>();
    l->worker = this;
    l->name = cfg.name;
    l->tls = cfg.tls.has_value();
    uv_tcp_init(&loop_, &l->handle);
    l->handle.data = l.get();
    uv_tcp_open(&l->handle, fd);
    listeners_.push_back(std::move(l));
}

void Worker::start() {
    thread_ = std::thread([this] { run(); });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::run() {
    t_current = this;
    // Named for top -H / ps -L, and for tests that look at each worker's scheduling policy.
    pthread_setname_np(pthread_self(),
                       ("moat-worker-" + std::to_string(index_)).substr(0, 15).c_str());
    applyScheduler();
    uv_timer_start(&sweepTimer_, onSweepTimer, kSweepEveryMs, kSweepEveryMs);
    for (auto& l : listeners_) {
        int r = uv_listen(reinterpret_cast<uv_stream_t*>(&l->handle), 1024, onConnection);
        if (r != 0) MOAT_LOG_ERROR("listener %s: listen: %s", l->name.c_str(), uv_strerror(r));
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    t_current = nullptr;
    gateway_.workerStopped();
}

void Worker::post(std::function<void(Worker&)> fn) {
    {
        std::lock_guard lock(postMutex_);
        posted_.push_back(std::move(fn));
    }
    uv_async_send(&async_);
}

void Worker::onAsync(uv_async_t* h) {
    auto* self = static_cast<Worker*>(h->data);
    std::vector<std::function<void(Worker&)>> work;
    {
        std::lock_guard lock(self->postMutex_);
        work.swap(self->posted_);
    }
    for (auto& fn : work) fn(*self);
}

void Worker::setSnapshot(std::shared_ptr<const Snapshot> s) {
    snapshot_ = std::move(s);
    applyScheduler();
    // Copy: applySnapshot may close (and detach) connections.
    std::vector<ClientConnection*> conns = connections_;
    for (auto* c : conns) c->applySnapshot(*snapshot_);
}

// tuning.scheduler, on this worker's own thread (Linux applies a policy per thread when
// given 0). Runs at start and after each reload; a failure leaves the thread as it was.
void Worker::applyScheduler() {
    using Scheduler = config::TuningConfig::Scheduler;
    const Scheduler wanted = snapshot_->config->tuning.scheduler;
    if (scheduler_ == wanted) return;
    if (!scheduler_ && wanted == Scheduler::Normal) {  // leave what the service manager set
        scheduler_ = wanted;
        return;
    }
    sched_param param{};
    const int policy = wanted == Scheduler::Batch ? SCHED_BATCH : SCHED_OTHER;
    if (sched_setscheduler(0, policy, &param) != 0) {
        MOAT_LOG_WARN("worker %d: tuning.scheduler: %s", index_, std::strerror(errno));
        return;
    }
    scheduler_ = wanted;
}

uv_buf_t Worker::readBuffer() {
    return uv_buf_init(reinterpret_cast<char*>(readBuffer_.get()), kReadBufferSize);
}

void Worker::attach(ClientConnection* c) {
    connections_.push_back(c);
}

void Worker::detach(ClientConnection* c) {
    auto it = std::find(connections_.begin(), connections_.end(), c);
    if (it != connections_.end()) {
        *it = connections_.back();
        connections_.pop_back();
    }
    if (shuttingDown_) maybeFinishShutdown();
}

void Worker::onConnection(uv_stream_t* server, int status) {
    auto* l = static_cast<WorkerListener*>(server->data);
    if (status < 0) {
        MOAT_LOG_WARN("listener %s: accept: %s", l->name.c_str(), uv_strerror(status));
        return;
    }
    auto* conn = new ClientConnection(*l->worker, *l);
    conn->accept(server);  // on failure it closes and deletes itself
}

void Worker::stopAccepting() {
    for (auto& l : listeners_) {
        if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->handle)))
            uv_close(reinterpret_cast<uv_handle_t*>(&l->handle), nullptr);
    }
}

void Worker::beginShutdown(uint64_t drainTimeoutMs) {
    if (shuttingDown_) return;
    shuttingDown_ = true;
    stopAccepting();
    std::vector<ClientConnection*> conns = connections_;
    for (auto* c : conns) c->drain();
    uv_timer_start(&drainTimer_, onDrainTimer, drainTimeoutMs, 0);
    maybeFinishShutdown();
}

void Worker::onDrainTimer(uv_timer_t* t) {
    auto* self = static_cast<Worker*>(t->data);
    MOAT_LOG_WARN("worker %d: drain timeout with %zu connections left; closing them", self->index_,
                  self->connections_.size());
    std::vector<ClientConnection*> conns = self->connections_;
    for (auto* c : conns) c->abort();
}

void Worker::onSweepTimer(uv_timer_t* t) {
    auto* self = static_cast<Worker*>(t->data);
    self->topicScans_.sweep(std::chrono::steady_clock::now());
}

void Worker::maybeFinishShutdown() {
    if (!connections_.empty()) return;
    // Everything is closed: stop the loop by closing the remaining handles.
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
            if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
}

}  // namespace moat::net
