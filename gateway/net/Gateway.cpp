#include "gateway/net/Gateway.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "gateway/metrics/AddressAnomalies.h"
#include "gateway/metrics/HttpEndpoint.h"
#include "gateway/metrics/JsonEscape.h"
#include "gateway/net/FileWatcher.h"
#include "gateway/net/Log.h"
#include "gateway/net/Resources.h"
#include "gateway/net/Worker.h"
#include "gateway/tls/VerifiedChainCache.h"

namespace moat::net {

namespace {
// One TCP connect to the broker in flight (backend.health_check_interval).
struct HealthProbe {
    uv_tcp_t tcp{};
    uv_connect_t req{};
    Gateway* gateway = nullptr;
};
}  // namespace

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kResolveEverySeconds = 30;

// A listening socket with SO_REUSEPORT, so every worker gets its own accept queue and the
// kernel spreads connections across them.
int bindSocket(const config::HostPort& hp, uint16_t port, std::string& error) {
    sockaddr_storage ss{};
    if (!BackendResolver::resolveNow(config::HostPort{hp.host, port}, ss)) {
        error = "cannot resolve '" + hp.host + "'";
        return -1;
    }
    const socklen_t len = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        error = "bind " + hp.host + ":" + std::to_string(port) + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

uint16_t boundPort(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

int workerCount(const config::Config& c) {
    int n = 1;
    const unsigned cores = usableCores();  // the container's CPU quota, not the node's cores
    for (const auto& l : c.listeners) n = std::max(n, l.workers == 0 ? int(cores) : l.workers);
    return n;
}

// Raises the open-file limit and warns when it leaves clearly less room than
// limits.max_connections promises: two descriptors per device (its socket and its broker
// connection) plus a few dozen for listeners, files and the metrics endpoint; beyond that,
// accept fails with EMFILE first.
void raiseFileLimitFor(uint32_t maxConnections) {
    const uint64_t files = raiseOpenFileLimit();
    const uint64_t room = files > 64 ? (files - 64) / 2 : 0;
    if (maxConnections != 0 && room * 10 < uint64_t(maxConnections) * 9) {
        MOAT_LOG_WARN(
            "open-file limit %llu leaves room for ~%llu devices, below "
            "limits.max_connections %u (2 descriptors per device): raise "
            "LimitNOFILE / ulimit -n",
            static_cast<unsigned long long>(files), static_cast<unsigned long long>(room),
            maxConnections);
    }
}

// Identity-level protection follows the ban thresholds; its delays stay well inside
// handshake_timeout so a slowed check still runs.
inspect::IdentityGuardConfig identityGuardConfig(const config::Config& c) {
    inspect::IdentityGuardConfig g;
    g.threshold = c.bans.authFailures;
    g.window = c.bans.window;
    g.maxDelay = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(0),
                                                     c.limits.handshakeTimeout / 3);
    g.baseDelay = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(500), g.maxDelay);
    return g;
}

// Password checks wait at most this many (CONNACK 0x89 beyond, see AuthPool).
constexpr size_t kAuthQueueCapacity = 1024;

// moat_tls_verify_cache_total{result="hit"|"miss"} and moat_tls_verify_cache_entries: the
// process-wide verified-chain cache, read at scrape time.
std::vector<prometheus::MetricFamily> verifyCacheMetrics() {
    const tls::VerifiedChainCache::Stats s = tls::VerifiedChainCache::processWide().stats();
    prometheus::MetricFamily total;
    total.name = "moat_tls_verify_cache_total";
    total.help =
        "Client-certificate chain verifications answered by the verified-chain cache "
        "(hit) or done in full (miss).";
    total.type = prometheus::MetricType::Counter;
    for (auto [label, value] : {std::pair{"hit", s.hits}, std::pair{"miss", s.misses}}) {
        prometheus::ClientMetric m;
        m.label = {{"result", label}};
        m.counter.value = static_cast<double>(value);
        total.metric.push_back(std::move(m));
    }
    prometheus::MetricFamily entries;
    entries.name = "moat_tls_verify_cache_entries";
    entries.help = "Verified client-certificate chains held by the cache.";
    entries.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric e;
    e.gauge.value = static_cast<double>(s.size);
    entries.metric.push_back(std::move(e));
    return {std::move(total), std::move(entries)};
}

}  // namespace

Gateway::Gateway(std::string configPath, std::shared_ptr<const Snapshot> snapshot)
    : configPath_(std::move(configPath)),
      snapshot_(std::move(snapshot)),
      bans_(snapshot_->config->bans),
      identityGuard_(identityGuardConfig(*snapshot_->config)),
      owners_(snapshot_->config->auth.sessionOwnerTtl) {
    uv_loop_init(&loop_);
    audit_ = std::make_unique<metrics::AuditLog>(snapshot_->config->audit);
    audit_->setSuppressedCounter(&metrics_.auditSuppressed());
    anomalies_ = std::make_unique<metrics::AddressAnomalies>(snapshot_->config->anomaly);
    otherEvents_ = std::make_unique<metrics::AddressEventQueue>();
    metrics_.backendUp().Set(1);
    metrics_.addCollector(verifyCacheMetrics);
    admission_ =
        std::make_unique<inspect::ShardedAdmission>(snapshot_->config->limits, &totalConnections_);
}

Gateway::~Gateway() {
    workers_.clear();
    uv_loop_close(&loop_);
}

bool Gateway::bindListeners(std::string& error) {
    const config::Config& cfg = *snapshot_->config;
    int n = workerCount(cfg);
    for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i, snapshot_));
    for (const auto& l : cfg.listeners) {
        int want = l.workers == 0 ? n : std::min(n, l.workers);
        uint16_t port = l.bind.port;
        for (int i = 0; i < want; ++i) {
            int fd = bindSocket(l.bind, port, error);
            if (fd < 0) {
                error = "listener '" + l.name + "': " + error;
                return false;
            }
            port = boundPort(fd);  // port 0: the others join the port the first one got
            workers_[i]->addListener(l, fd);
        }
        auto& lm = metrics_.listener(l.name, l.tls.has_value());
        (void)lm;
        MOAT_LOG_INFO("listener %s on %s:%u (%s, %d workers)", l.name.c_str(), l.bind.host.c_str(),
                      port, l.tls ? "tls" : "plaintext", want);
    }
    return true;
}

int Gateway::run() {
    std::string error;
    raiseFileLimitFor(snapshot_->config->limits.maxConnections);
    if (!audit_->open(error)) {
        MOAT_LOG_ERROR("audit log: %s", error.c_str());
        return 1;
    }
    if (!bindListeners(error)) {
        MOAT_LOG_ERROR("%s", error.c_str());
        return 1;
    }
    const config::Config& cfg = *snapshot_->config;
    if (cfg.metrics.enabled) {
        http_ = std::make_unique<metrics::HttpEndpoint>(
            &loop_, cfg.metrics.bind.host, cfg.metrics.bind.port, cfg.metrics.path,
            [this] { return metrics_.serialize(); }, [this] { return backendReachable(); });
        http_->setAdmin(
            [this](std::string_view method, std::string_view path, std::string_view query) {
                return ownersRequest(method, path, query);
            });
        if (!http_->start(error)) {
            MOAT_LOG_ERROR("metrics endpoint %s: %s", cfg.metrics.bind.toString().c_str(),
                           error.c_str());
            return 1;
        }
        MOAT_LOG_INFO("metrics on http://%s:%u%s", cfg.metrics.bind.host.c_str(),
                      http_->boundPort(), cfg.metrics.path.c_str());
    }
    resolver_.set(cfg.backend.address);  // before the first device: no lookup on a worker
    // PBKDF2 on its own threads (half the usable cores, at least 2; the event loops keep the
    // rest), so a login flood never holds the libuv pool that reloads and DNS use.
    authPool_ =
        std::make_unique<AuthPool>(std::max(2u, usableCores() / 2), kAuthQueueCapacity,
                                   [this](const std::string& ip) { return isIpBanned(ip); });
    updateJwksFetcher();
    startMain();
    runningWorkers_ = static_cast<int>(workers_.size());
    for (auto& w : workers_) w->start();
    MOAT_LOG_INFO("moat serving, backend %s", cfg.backend.address.toString().c_str());
    uv_run(&loop_, UV_RUN_DEFAULT);
    for (auto& w : workers_) w->join();
    {
        std::lock_guard lock(jwksMutex_);
        jwks_.reset();  // stops its thread (a fetch in flight is aborted)
    }
    if (!authPool_->stop()) {
        // A PBKDF2 (up to seconds) was still running: not waited for. Exit without exit
        // handlers, which would free OpenSSL state under that thread's feet.
        audit_->flush();
        MOAT_LOG_INFO("moat stopped (a password check was abandoned)");
        std::fflush(nullptr);
        std::_Exit(0);
    }
    audit_->flush();
    MOAT_LOG_INFO("moat stopped");
    return 0;
}

void Gateway::startMain() {
    for (auto* s : {&sigHup_, &sigTerm_, &sigInt_}) {
        uv_signal_init(&loop_, s);
        s->data = this;
    }
    uv_signal_start(&sigHup_, onSignal, SIGHUP);
    uv_signal_start(&sigTerm_, onSignal, SIGTERM);
    uv_signal_start(&sigInt_, onSignal, SIGINT);
    uv_timer_init(&loop_, &housekeeping_);
    housekeeping_.data = this;
    // The first scrape already shows the certificates' expiry (not a second later).
    updateCertExpiry();
    uv_timer_start(&housekeeping_, onHousekeeping, 1000, 1000);
    uv_async_init(&loop_, &workersDone_, onWorkersDone);
    workersDone_.data = this;
    uv_async_init(&loop_, &addressEvents_, onAddressEvents);
    addressEvents_.data = this;
    eventsOpen_.store(true);
    uv_timer_init(&loop_, &healthCheck_);
    healthCheck_.data = this;
    restartHealthCheck();
    // 500 ms: long enough for a rotation tool to finish writing cert, key and CRL.
    watcher_ = std::make_unique<FileWatcher>(&loop_, 500, [this] {
        MOAT_LOG_INFO("a watched file changed: reloading");
        reload();
    });
    watcher_->watch(watchedFiles());
    startCluster();
}

std::vector<std::string> Gateway::watchedFiles() const {
    std::vector<std::string> files;
    std::error_code ec;
    files.push_back(std::filesystem::absolute(configPath_, ec).string());
    const config::Config& cfg = *snapshot_->config;
    for (const auto& l : cfg.listeners) {
        if (!l.tls) continue;
        for (const std::string* f : {&l.tls->cert, &l.tls->key, &l.tls->clientCa, &l.tls->crl})
            if (!f->empty()) files.push_back(*f);
    }
    if (!cfg.auth.passwordFile.empty()) files.push_back(cfg.auth.passwordFile);
    if (cfg.auth.token) {
        // auth.token's keys, secrets and JWKS document: rotated like certificates.
        for (const auto& f : cfg.auth.token->keys) files.push_back(f);
        for (const auto& f : cfg.auth.token->hmacSecrets) files.push_back(f);
        if (!cfg.auth.token->jwksFile.empty()) files.push_back(cfg.auth.token->jwksFile);
    }
    // Integrity keys; a per-identity `%u` is watchable in the file name only (a `%u` folder
    // would mean one watch per identity: those keys change on SIGHUP).
    for (const auto& rule : cfg.integrity.rules) {
        const size_t slash = rule.key.rfind('/');
        const size_t at = rule.key.find("%u");
        if (at == std::string::npos || slash == std::string::npos || at > slash)
            files.push_back(rule.key);  // absolute: the loader resolved it
    }
    return files;
}

void Gateway::onSignal(uv_signal_t* h, int signum) {
    auto* self = static_cast<Gateway*>(h->data);
    if (signum == SIGHUP)
        self->reload();
    else
        self->beginShutdown();
}

void Gateway::beginShutdown() {
    if (shuttingDown_) return;
    shuttingDown_ = true;
    uint64_t drain = snapshot_->config->limits.drainTimeout.count();
    MOAT_LOG_INFO("shutting down: draining connections (up to %llu ms)", (unsigned long long)drain);
    for (auto& w : workers_) w->post([drain](Worker& wk) { wk.beginShutdown(drain); });
}

void Gateway::workerStopped() {
    if (--runningWorkers_ == 0) uv_async_send(&workersDone_);
}

void Gateway::onWorkersDone(uv_async_t* h) {
    auto* self = static_cast<Gateway*>(h->data);
    self->drainAddressEvents();  // the workers' last events
    self->closeAddressEvents();
    self->resolver_.close();
    if (self->http_) self->http_->close();
    if (self->watcher_) self->watcher_->close();
    if (self->cluster_) self->cluster_->close();
    if (auto* probe = static_cast<HealthProbe*>(self->probe_)) {
        self->probe_ = nullptr;
        uv_close(reinterpret_cast<uv_handle_t*>(&probe->tcp),
                 [](uv_handle_t* h) { delete static_cast<HealthProbe*>(h->data); });
    }
    uv_walk(
        &self->loop_,
        [](uv_handle_t* hd, void*) {
            if (!uv_is_closing(hd)) uv_close(hd, nullptr);
        },
        nullptr);
}

struct ReloadWork {
    uv_work_t req;
    Gateway* gateway;
    std::string path;
    std::shared_ptr<const Snapshot> result;
    std::vector<std::string> errors;
    std::optional<sockaddr_storage> backend;  // the new backend address, resolved off-loop
};

void Gateway::updateJwksFetcher() {
    const auto& token = snapshot_->config->auth.token;
    std::optional<JwksFetcher::Settings> want;
    if (token && !token->jwksUrl.empty() &&
        snapshot_->config->auth.hasMethod(config::AuthMethod::Token)) {
        JwksFetcher::Settings s;
        s.url = token->jwksUrl;
        s.caFile = token->jwksCa;
        s.refresh = token->jwksRefresh;
        want = std::move(s);
    }
    std::shared_ptr<JwksFetcher> old;
    {
        std::lock_guard lock(jwksMutex_);
        if (want && jwks_ && jwks_->settings() == *want) return;
        if (!want && !jwks_) return;
        old = std::move(jwks_);
        if (want) {
            metrics::Metrics* m = &metrics_;
            const std::string url = want->url;
            jwks_ = std::make_shared<JwksFetcher>(*want, [m, url](JwksFetcher::Event e,
                                                                  const std::string& detail) {
                switch (e) {
                    case JwksFetcher::Event::Ok:
                        m->jwksFetch(0);
                        MOAT_LOG_INFO("jwks_url %s: %s", url.c_str(), detail.c_str());
                        break;
                    case JwksFetcher::Event::Failed:
                        m->jwksFetch(1);
                        MOAT_LOG_WARN("jwks_url %s: fetch failed, keeping the last good keys: %s",
                                      url.c_str(), detail.c_str());
                        break;
                    case JwksFetcher::Event::Skipped:
                        m->jwksFetch(2);
                        break;
                }
            });
        }
    }
    // `old` (if any) stops when the last pool job holding it lets go.
}

void Gateway::reload() {
    if (shuttingDown_ || !reloadGate_.request()) return;  // running: pending, runs after it
    startReload();
}

void Gateway::startReload() {
    audit_->reopen();  // logrotate: SIGHUP also reopens the audit log file
    auto* work = new ReloadWork{{}, this, configPath_, nullptr, {}, {}};
    work->req.data = work;
    // Validation (YAML, certificates, password hashes file, policy) runs off every event loop.
    uv_queue_work(
        &loop_, &work->req,
        [](uv_work_t* req) {
            auto* w = static_cast<ReloadWork*>(req->data);
            w->result = loadSnapshot(w->path, w->errors);
            sockaddr_storage ss{};
            if (w->result && BackendResolver::resolveNow(w->result->config->backend.address, ss))
                w->backend = ss;
        },
        [](uv_work_t* req, int) {
            auto* w = static_cast<ReloadWork*>(req->data);
            Gateway* self = w->gateway;
            self->applyReload(*w);
            delete w;
            // A request during this reload may be about a file it read before the change.
            if (self->reloadGate_.finish(self->shuttingDown_)) {
                MOAT_LOG_INFO("reload requested while reloading: reloading again");
                self->startReload();
            }
        });
}

void Gateway::applyReload(ReloadWork& w) {
    if (!w.result) {
        for (const auto& e : w.errors) MOAT_LOG_ERROR("reload: %s", e.c_str());
        metrics_.reload(false);
        audit("reload", "", "", "", "", "", "", "", "",
              "failed: " + (w.errors.empty() ? std::string("unknown") : w.errors.front()));
        return;
    }
    snapshot_ = w.result;
    resolver_.adopt(snapshot_->config->backend.address, w.backend);
    restartHealthCheck();
    bans_.updateConfig(snapshot_->config->bans);
    identityGuard_.updateConfig(identityGuardConfig(*snapshot_->config));
    if (cluster_) cluster_->updateBans(snapshot_->config->bans);
    {
        std::lock_guard lock(ownersMutex_);
        owners_.setTtl(snapshot_->config->auth.sessionOwnerTtl);
    }
    admission_->updateLimits(snapshot_->config->limits);
    for (auto& wk : workers_) {
        auto snap = snapshot_;
        wk->post([snap](Worker& worker) { worker.setSnapshot(snap); });
    }
    if (watcher_) watcher_->watch(watchedFiles());
    updateJwksFetcher();
    updateCertExpiry();  // a rotated certificate's expiry shows at once
    metrics_.reload(true);
    audit("reload", "", "", "", "", "", "", "", "", "ok");
    MOAT_LOG_INFO("configuration reloaded (generation %llu)",
                  (unsigned long long)snapshot_->generation);
}

void Gateway::onHousekeeping(uv_timer_t* t) {
    auto* self = static_cast<Gateway*>(t->data);
    auto now = SteadyClock::now();
    // With health checks off, a host-name backend is re-resolved every 30 s from here.
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&self->healthCheck_)) &&
        ++self->secondsSinceResolve_ >= kResolveEverySeconds) {
        self->secondsSinceResolve_ = 0;
        self->resolver_.refresh();
    }
    self->bans_.sweep(now);
    self->identityGuard_.sweep(now);
    self->admission_->sweep(now);
    self->metrics_.bansActive().Set(static_cast<double>(self->bans_.activeBans(now)));
    self->drainAddressEvents();  // also picks up a push that raced with the last wake
    self->anomalies_->sweep(now);
    self->sweepOwners();
    self->updateCertExpiry();
}

void Gateway::updateCertExpiry() {
    for (const auto& [name, ctx] : snapshot_->tls) {
        auto& lm = metrics_.listener(name, true);
        if (lm.certExpirySeconds) {
            auto left = std::chrono::duration_cast<std::chrono::seconds>(
                ctx->serverCertNotAfter() - std::chrono::system_clock::now());
            lm.certExpirySeconds->Set(static_cast<double>(left.count()));
        }
    }
}

// The probe's timer follows backend.health_check_interval, also when a reload changes it.
void Gateway::restartHealthCheck() {
    const uint64_t every = snapshot_->config->backend.healthCheckInterval.count();
    if (every == healthCheckEvery_) return;
    uv_timer_stop(&healthCheck_);
    healthCheckEvery_ = every;
    if (every) uv_timer_start(&healthCheck_, onHealthCheck, 0, every);
}

// Opens and closes one TCP connection to the broker: enough to tell "reachable" (the broker
// logs it as a connection that closed before CONNECT).
void Gateway::onHealthCheck(uv_timer_t* t) {
    auto* self = static_cast<Gateway*>(t->data);
    if (self->shuttingDown_) return;
    // Each tick also re-resolves a host-name backend in the background (even while a probe
    // is still in flight); the probe uses the address resolved so far.
    self->resolver_.refresh();
    if (self->probe_) return;
    sockaddr_storage ss{};
    const config::HostPort& addr = self->snapshot_->config->backend.address;
    if (!self->backendAddress(addr, ss)) {
        self->setBackendReachable(false);
        return;
    }
    auto* probe = new HealthProbe;
    probe->gateway = self;
    probe->tcp.data = probe;
    probe->req.data = probe;
    uv_tcp_init(&self->loop_, &probe->tcp);
    self->probe_ = probe;
    int r = uv_tcp_connect(
        &probe->req, &probe->tcp, reinterpret_cast<sockaddr*>(&ss),
        [](uv_connect_t* req, int status) {
            // ECANCELED: shutdown already closes the handle.
            if (status == UV_ECANCELED) return;
            auto* p = static_cast<HealthProbe*>(req->data);
            p->gateway->probe_ = nullptr;
            p->gateway->setBackendReachable(status == 0 && !p->gateway->brokerUnresponsive());
            uv_close(reinterpret_cast<uv_handle_t*>(&p->tcp),
                     [](uv_handle_t* h) { delete static_cast<HealthProbe*>(h->data); });
        });
    if (r != 0) {
        self->probe_ = nullptr;
        self->setBackendReachable(false);
        uv_close(reinterpret_cast<uv_handle_t*>(&probe->tcp),
                 [](uv_handle_t* h) { delete static_cast<HealthProbe*>(h->data); });
    }
}

// ---------------------------------------------------------------- worker-facing

bool Gateway::admit(Worker& worker, const std::string& listener, const std::string& ip) {
    auto& lm = metrics_.listener(listener);
    inspect::Admission a;
    // Other replicas' connections from this IP, as last heard (0 without a cluster or while
    // Redis is down: local-only limits).
    const uint32_t elsewhere = cluster_ ? cluster_->remoteConnections(ip) : 0;
    a = admission_->admit(ip, SteadyClock::now(), bans_, elsewhere);
    if (a == inspect::Admission::Accepted) {
        if (cluster_) cluster_->connectionOpened(ip);
        lm.accepted->Increment();
        lm.active->Increment();
        metrics::AddressEvent e;
        e.kind = metrics::AddressEvent::Kind::Connection;
        e.ip = ip;
        e.listener = listener;
        e.at = SteadyClock::now();
        queueAddressEvent(worker.addressEvents(), std::move(e));
        return true;
    }
    if (a == inspect::Admission::Banned) {
        lm.banned->Increment();
    } else {
        lm.limited->Increment();
        metrics_.rateLimited(inspect::admissionName(a));
    }
    audit(a == inspect::Admission::Banned ? "ban" : "rate_limited", listener, ip, "", "", "", "",
          "", "", inspect::admissionName(a));
    return false;
}

void Gateway::release(Worker& /*worker*/, const std::string& listener, const std::string& ip) {
    admission_->release(ip);
    if (cluster_) cluster_->connectionClosed(ip);
    metrics_.listener(listener).active->Decrement();
}

void Gateway::tlsHandshakeOk(const std::string& listener) {
    metrics_.listener(listener).tlsOk->Increment();
}

void Gateway::tlsHandshakeFailed(const std::string& listener) {
    metrics_.listener(listener).tlsFailed->Increment();
}

void Gateway::authCounted(std::string_view method, bool success) {
    metrics_.auth(method == "certificate" ? metrics::AuthMethodLabel::Certificate
                  : method == "token"     ? metrics::AuthMethodLabel::Token
                                          : metrics::AuthMethodLabel::Password,
                  success);
}

void Gateway::authFailed(Worker& worker, std::string_view method, const std::string& ip,
                         const std::string& identity) {
    if (method == "certificate") authCounted(method, false);
    auto now = SteadyClock::now();
    // Bans are per source address (CONTRACT §3): the identity in a failed CONNECT is only a
    // claim, so it is charged to the identity guard (slower checks for it from addresses it
    // has not logged in from), never to a ban that would lock the real owner out.
    recordAddressFailure(ip, "auth_failures", now);
    identityGuard_.chargeCheck(identity, ip, now);
    shareAuthFailure(ip, identity, now, worker.addressEvents());
}

void Gateway::handshakeFailed(const std::string& ip) {
    auto now = SteadyClock::now();
    recordAddressFailure(ip, "tls_handshake_failures", now);
    if (cluster_ && !bans_.isIpBanned(ip, now)) cluster_->authFailure(ip, std::string());
}

void Gateway::recordAddressFailure(const std::string& ip, std::string_view reason,
                                   SteadyClock::time_point now) {
    if (std::optional<inspect::Ban> ban = bans_.recordAuthFailure(ip, "", now).ip) {
        banMade(*ban, reason);
        metrics_.bansActive().Set(static_cast<double>(bans_.activeBans(now)));
    }
}

void Gateway::shareAuthFailure(const std::string& ip, const std::string& identity,
                               SteadyClock::time_point now, metrics::AddressEventQueue& queue) {
    // The cluster-wide count: the replica whose failure reaches the threshold bans (addresses)
    // or slows (identities).
    if (cluster_) {
        cluster_->authFailure(bans_.isIpBanned(ip, now) ? std::string() : ip, identity);
    }
    metrics::AddressEvent e;
    e.kind = metrics::AddressEvent::Kind::AuthFailure;
    e.ip = ip;
    if (identity.size() <= metrics::AddressEvent::kMaxIdentity) e.identity = identity;
    e.at = now;
    queueAddressEvent(queue, std::move(e));
}

void Gateway::queueAddressEvent(metrics::AddressEventQueue& queue, metrics::AddressEvent event) {
    // Full: the main loop is far behind; the event is counted as dropped (logged by the
    // housekeeping) and the main loop is surely awake already.
    if (queue.push(std::move(event))) wakeForAddressEvents();
}

void Gateway::wakeForAddressEvents() {
    // A worker needs no gate: the main loop closes the handle only after every worker's
    // loop has ended (onWorkersDone), and no worker then shares the wakers_ cache line.
    if (Worker::current() != nullptr) {
        uv_async_send(&addressEvents_);
        return;
    }
    wakers_.fetch_add(1);
    if (eventsOpen_.load()) uv_async_send(&addressEvents_);
    wakers_.fetch_sub(1);
}

void Gateway::onAddressEvents(uv_async_t* h) {
    static_cast<Gateway*>(h->data)->drainAddressEvents();
}

void Gateway::drainAddressEvents() {
    std::vector<metrics::RaisedAnomaly> raised;
    uint64_t dropped = otherEvents_->dropped();
    anomalies_->drain(*otherEvents_, raised);
    for (auto& w : workers_) {
        anomalies_->drain(w->addressEvents(), raised);
        dropped += w->addressEvents().dropped();
    }
    for (const auto& r : raised) raiseAnomaly(r.anomaly, r.listener, r.remote, "", r.identity);
    if (dropped != eventsDropped_) {
        MOAT_LOG_WARN("anomaly detection fell behind: %llu per-address events dropped so far",
                      static_cast<unsigned long long>(dropped));
        eventsDropped_ = dropped;
    }
}

void Gateway::closeAddressEvents() {
    eventsOpen_.store(false);
    // A waker that saw eventsOpen_ true is still inside uv_async_send: let it finish.
    while (wakers_.load() != 0) std::this_thread::yield();
    uv_close(reinterpret_cast<uv_handle_t*>(&addressEvents_), nullptr);
}

AuthCharge Gateway::chargePasswordCheck(const std::string& ip, const std::string& identity) {
    AuthCharge c;
    c.ip = ip;
    c.identity = identity;
    c.at = SteadyClock::now();
    // Only the identity guard is charged up front. The address's ban counts settled failures
    // only: charging every started check against it banned a fleet behind one NAT address
    // reconnecting at once with correct passwords (the soak found it). A check that never
    // completes (queue timeout, eviction, closed connection) is settled as failed, so it
    // still counts; queued checks of an address banned meanwhile are refused at dequeue.
    inspect::IdentityGuard::Charge g = identityGuard_.chargeCheck(identity, ip, c.at);
    c.identityCharged = g.charged;
    c.delay = g.delay;
    if (g.charged) c.at = g.chargedAt;
    return c;
}

void Gateway::settlePasswordCheck(const AuthCharge& c, bool succeeded) {
    if (succeeded) {
        if (c.identityCharged) identityGuard_.withdraw(c.identity, c.at);
        return;
    }
    auto now = SteadyClock::now();
    recordAddressFailure(c.ip, "auth_failures", now);
    // A password-check thread (or the worker that gave up on the check): no worker's own
    // queue unless it is the caller's.
    Worker* w = Worker::current();
    shareAuthFailure(c.ip, c.identity, now, w ? w->addressEvents() : *otherEvents_);
}

void Gateway::loggedIn(const std::string& identity, const std::string& ip) {
    identityGuard_.loggedIn(identity, ip, SteadyClock::now());
}

std::optional<metrics::Anomaly> Gateway::deniedTopic(uint64_t connectionId,
                                                     std::string_view topic) {
    // A connection lives on one worker and calls from its loop: that worker's detector holds
    // all of its state, and a flood of denials from it contends with nobody.
    Worker* w = Worker::current();
    if (w == nullptr) return std::nullopt;  // not a connection's thread: nothing to count
    return w->topicScans().onDeniedTopic(connectionId, topic, SteadyClock::now());
}

void Gateway::forgetConnection(uint64_t connectionId) {
    if (Worker* w = Worker::current()) w->topicScans().forgetConnection(connectionId);
}

void Gateway::raiseAnomaly(const metrics::Anomaly& anomaly, std::string_view listener,
                           std::string_view remote, std::string_view clientId,
                           std::string_view identity) {
    metrics_.anomaly(anomaly.kind);
    // The subject holds what a client chose (a claimed username): quoted and escaped.
    MOAT_LOG_WARN("anomaly %s: %s (%llu events)", anomaly.kind.c_str(),
                  metrics::quoteForLog(anomaly.subject).c_str(), (unsigned long long)anomaly.count);
    audit("anomaly", listener, remote, clientId, identity, "", "", "", "",
          anomaly.kind + " " + anomaly.subject, anomaly.count);
}

bool Gateway::isIpBanned(const std::string& ip) {
    return bans_.isIpBanned(ip, SteadyClock::now());
}

bool Gateway::isIdentityBanned(const std::string& identity) {
    return bans_.isIdentityBanned(identity, SteadyClock::now());
}

void Gateway::backendConnackTimedOut() {
    bool down;
    {
        std::lock_guard<std::mutex> lock(healthMutex_);
        health_.connackTimedOut(inspect::BackendHealth::Clock::now());
        down = health_.unresponsive(inspect::BackendHealth::Clock::now());
    }
    if (down) setBackendReachable(false);
}

void Gateway::backendConnackReceived() {
    {
        std::lock_guard<std::mutex> lock(healthMutex_);
        health_.connackReceived();
    }
    setBackendReachable(true);
}

bool Gateway::brokerUnresponsive() {
    std::lock_guard<std::mutex> lock(healthMutex_);
    return health_.unresponsive(inspect::BackendHealth::Clock::now());
}

void Gateway::setBackendReachable(bool up) {
    if (backendUp_.exchange(up) != up) {
        metrics_.backendUp().Set(up ? 1 : 0);
        if (up)
            MOAT_LOG_INFO("backend reachable again");
        else
            MOAT_LOG_WARN("backend unreachable");
    }
}

void Gateway::audit(std::string_view event, std::string_view listener, std::string_view remote,
                    std::string_view clientId, std::string_view identity, std::string_view protocol,
                    std::string_view action, std::string_view topic, std::string_view rule,
                    std::string_view reason, std::optional<uint64_t> count) {
    metrics::AuditEvent e;
    e.event = event;
    e.listener = listener;
    e.remote = remote;
    e.clientId = clientId;
    e.identity = identity;
    e.protocol = protocol;
    if (!action.empty()) e.action = action;
    if (!topic.empty()) e.topic = topic;
    if (!rule.empty()) e.rule = rule;
    if (!reason.empty()) e.reason = reason;
    e.count = count;
    audit_->log(e);
}

}  // namespace moat::net
