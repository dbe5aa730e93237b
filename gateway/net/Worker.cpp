#include "gateway/net/Worker.h"

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gateway/net/ClientConnection.h"
#include "gateway/net/ClientWebSocket.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"

namespace moat::net {

namespace {
constexpr size_t kReadBufferSize = 64 * 1024;
constexpr int kListenBacklog = 1024;
constexpr int kAcceptBatch = 64;     // connections accepted per listener wake-up
constexpr int kAcceptPauseMs = 100;  // after EMFILE / ENFILE / ENOMEM

// accept(2) errors that concern only the connection being accepted (it was aborted, or a
// network error pending on it, which Linux reports here): take the next one.
bool retryAccept(int error) {
    switch (error) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENOPROTOOPT:
        case ENETDOWN:
        case ENETUNREACH:
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case ENONET:
        case EOPNOTSUPP:
        case EPERM:  // a firewall rule refused it
            return true;
        default:
            return false;
    }
}
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
    // libuv opens a reserve descriptor for its EMFILE handling with a loop's first stream
    // handle. Listeners are polled, not libuv streams, so that would be the first connection:
    // open it now, so the descriptors a worker holds do not change with its first client.
    uv_tcp_init(&loop_, &firstStream_);
    uv_close(reinterpret_cast<uv_handle_t*>(&firstStream_), nullptr);
}

Worker::~Worker() {
    if (thread_.joinable()) thread_.join();
    for (auto& l : listeners_) {
        if (l->fd >= 0) ::close(l->fd);  // a worker that never ran still holds its sockets
    }
    gateway_.metrics().traffic().detach(&traffic_);
    uv_loop_close(&loop_);
}

void Worker::addListener(const config::ListenerConfig& cfg, int fd) {
    auto l = std::make_unique<WorkerListener>();
    l->worker = this;
    l->name = cfg.name;
    l->tls = cfg.tls.has_value();
    l->fd = fd;
    uv_poll_init_socket(&loop_, &l->poll, fd);
    l->poll.data = l.get();
    uv_timer_init(&loop_, &l->resume);
    l->resume.data = l.get();
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
        if (::listen(l->fd, kListenBacklog) != 0) {
            MOAT_LOG_ERROR("listener %s: listen: %s", l->name.c_str(), std::strerror(errno));
            continue;
        }
        uv_poll_start(&l->poll, UV_READABLE, onListenerReadable);
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

void Worker::onListenerReadable(uv_poll_t* h, int status, int /*events*/) {
    auto* l = static_cast<WorkerListener*>(h->data);
    if (status < 0) {
        MOAT_LOG_WARN("listener %s: poll: %s", l->name.c_str(), uv_strerror(status));
        return;
    }
    // A bounded batch per wake-up: the poll is level-triggered, so what is left is taken on
    // the next loop turn, after the traffic of the connections already open.
    for (int i = 0; i < kAcceptBatch; ++i) {
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        int fd =
            accept4(l->fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            l->worker->accepted(*l, fd, peer);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (retryAccept(errno)) continue;
        // Out of descriptors or memory: the pending connection stays in the backlog, and
        // retrying at once would spin on a socket that stays readable. Pause accepting (as
        // nginx does); connections already open carry on and free descriptors as they close.
        MOAT_LOG_WARN("listener %s: accept: %s; accepting again in %d ms", l->name.c_str(),
                      std::strerror(errno), kAcceptPauseMs);
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->resume, onAcceptResume, kAcceptPauseMs, 0);
        return;
    }
}

void Worker::onAcceptResume(uv_timer_t* t) {
    auto* l = static_cast<WorkerListener*>(t->data);
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->poll)))
        uv_poll_start(&l->poll, UV_READABLE, onListenerReadable);
}

void Worker::accepted(WorkerListener& l, int fd, const sockaddr_storage& peer) {
    // Admission control at accept, before any per-connection state, wherever the TCP peer is
    // the client: a refused connection (per-IP limits, bans — what a flood meets) then costs
    // accept4 + close. Behind a PROXY header or a trusted balancer's X-Forwarded-For the
    // client is named later, and the connection admits itself then.
    const proxy::Address who = proxy::addressFromSockaddr(reinterpret_cast<const sockaddr*>(&peer));
    bool admitted = false;
    if (!snapshot_->proxy.contains(l.name)) {
        auto ws = snapshot_->websocket.find(l.name);
        const bool later =
            ws != snapshot_->websocket.end() && ClientWebSocket::admitsAfterHead(*ws->second, who);
        if (!later) {
            if (!gateway_.admit(*this, l.name, who.ipText())) {
                ::close(fd);
                return;
            }
            admitted = true;
        }
    }
    auto* conn = new ClientConnection(*this, l);
    conn->accept(fd, who, admitted);  // on failure it closes and deletes itself
}

void Worker::stopAccepting() {
    for (auto& l : listeners_) {
        for (auto* h : {reinterpret_cast<uv_handle_t*>(&l->poll),
                        reinterpret_cast<uv_handle_t*>(&l->resume)}) {
            if (!uv_is_closing(h)) uv_close(h, nullptr);
        }
        // The poll handle never owned the socket; closing it stopped watching it.
        if (l->fd >= 0) ::close(l->fd);
        l->fd = -1;
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
