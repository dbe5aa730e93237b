#include "gateway/net/ClientConnection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "gateway/mqtt/Encoder.h"
#include "gateway/net/ClientWebSocket.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/StreamWriter.h"
#include "gateway/net/TcpKeepalive.h"
#include "gateway/net/Worker.h"

namespace moat::net {

using Stage = inspect::ConnectionPipeline::Stage;

namespace {

// Backpressure water marks on the queue of the side we write to. Above the high mark we
// stop reading from the other side; below the low mark we read again.
constexpr size_t kHighWater = 256 * 1024;
constexpr size_t kLowWater = 64 * 1024;

ClientConnection* fromHandle(const uv_handle_t* h) {
    return static_cast<ClientConnection*>(h->data);
}

}  // namespace

ClientConnection::ClientConnection(Worker& worker, WorkerListener& listener)
    : worker_(worker),
      listener_(listener),
      snapshot_(worker.snapshot()),
      id_(worker.nextConnectionId()),
      pipeline_(std::make_unique<inspect::ConnectionPipeline>(
          snapshot_->pipeline, static_cast<inspect::PipelineEvents&>(*this),
          uv_now(worker.loop()))) {
    worker_.attach(this);
}

ClientConnection::~ClientConnection() {
    worker_.detach(this);
}

uint64_t ClientConnection::now() const {
    return uv_now(worker_.loop());
}

bool ClientConnection::accept(int fd, const proxy::Address& peer, bool admitted) {
    admitted_ = admitted;
    peer_ = peer;  // IPv4-mapped IPv6 already plain IPv4, so per-IP limits agree
    remote_ = peer_.text();
    ip_ = peer_.ipText();
    uv_tcp_init(worker_.loop(), &client_);
    client_.data = this;
    ++openHandles_;
    uv_timer_init(worker_.loop(), &timer_);
    timer_.data = this;
    ++openHandles_;
    uv_timer_init(worker_.loop(), &throttleTimer_);
    throttleTimer_.data = this;
    ++openHandles_;
    if (uv_tcp_open(&client_, fd) != 0) {
        ::close(fd);
        closeNow();
        return false;
    }
    uv_tcp_nodelay(&client_, 1);

    auto proxyIt = snapshot_->proxy.find(listener_.name);
    if (proxyIt == snapshot_->proxy.end()) {
        syncTimer();  // handshake_timeout: the pipeline's first deadline
        return start();
    }
    // HAProxy's accept-proxy: only a trusted balancer may speak for someone else. Anyone
    // else is refused before a byte is read, and before admission counts it under its IP.
    if (!proxyIt->second.trusted.contains(peer_)) {
        worker_.gateway().protocolError("proxy_untrusted_source");
        audit("protocol_error", "", "", "",
              "PROXY protocol listener: source not in trusted_proxies");
        closeNow();
        return false;
    }
    // The header is part of the handshake: handshake_timeout runs from here, and admission
    // waits for the device address the header carries.
    state_ = State::ProxyHeader;
    syncTimer();
    clientReading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    return true;
}

bool ClientConnection::start() {
    Gateway& gw = worker_.gateway();
    if (auto it = snapshot_->websocket.find(listener_.name); it != snapshot_->websocket.end())
        ws_ = std::make_unique<ClientWebSocket>(it->second, peer_);
    // A trusted balancer's X-Forwarded-For names the client: admission waits for the head.
    // Raw listeners were admitted by the worker at accept.
    if (!admitted_ && !(ws_ && ws_->admitAfterHead)) {
        if (!gw.admit(worker_, listener_.name, ip_)) {
            closeNow();
            return false;
        }
        admitted_ = true;
    }

    auto tlsIt = snapshot_->tls.find(listener_.name);
    if (tlsIt != snapshot_->tls.end()) {
        tls_ = std::make_unique<tls::TlsSession>(tlsIt->second->native());
        handshakeGeneration_ = snapshot_->generation;
        state_ = State::TlsHandshake;
    } else {
        state_ = State::Open;
    }
    if (!clientReading_) {
        clientReading_ = true;
        uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    }
    return true;
}

// ------------------------------------------------------------------ client packets

void ClientConnection::onClientPlaintext(const uint8_t* data, size_t len) {
    if (clientIn_.empty()) {
        size_t used = processClientPackets(data, len);
        if (used < len && state_ != State::Closing) clientIn_.append(data + used, len - used);
        if (used < len && state_ == State::Closing) lingering_ = true;  // refused mid-stream
    } else {
        clientIn_.append(data, len);
        size_t used = processClientPackets(clientIn_.data(), clientIn_.size());
        if (state_ != State::Closing) clientIn_.consume(used);
        if (used < clientIn_.size() && state_ == State::Closing) lingering_ = true;
    }
}

size_t ClientConnection::processClientPackets(const uint8_t* data, size_t len) {
    size_t off = 0;
    ForwardRun run{data, &ClientConnection::sendToBackend};
    while (off < len && state_ == State::Open && clientPause_ == 0) {
        const Stage stage = pipeline_->stage();
        if (stage != Stage::AwaitConnect && stage != Stage::Established) break;
        mqtt::Frame frame;
        mqtt::FrameStatus fs = mqtt::parseFrame(data + off, len - off, frame);
        if (fs == mqtt::FrameStatus::NeedMore) break;
        if (fs == mqtt::FrameStatus::Malformed) {
            run.flush(*this);
            execute(pipeline_->onClientMalformed());
            return off;
        }
        if (inspect::Action a = pipeline_->onClientHeader(frame); a.closes()) {
            run.flush(*this);
            execute(std::move(a));
            return off;
        }
        if (len - off < frame.totalSize()) break;
        const uint8_t* whole = data + off;
        const uint8_t* body = whole + frame.headerSize;
        const size_t size = frame.totalSize();
        auto& traffic = worker_.traffic();
        if (stage == Stage::AwaitConnect) {
            traffic.packetsIn[static_cast<uint8_t>(frame.type()) & 15]++;
            traffic.bytesIn += size;
            off += size;
            execute(pipeline_->onConnect(frame, body, whole, connectContext(), now()));
            continue;  // the loop stops: the stage changed
        }
        const inspect::Verdict v = pipeline_->onClientPacket(frame, body, now());
        if (v.kind == inspect::Verdict::Kind::Hold) {
            // Throttle: this packet stays buffered and nothing more is read until the bucket
            // has refilled; TCP flow control then slows the device down. Nothing is lost.
            pauseClient(kPauseThrottle);
            uv_timer_start(&throttleTimer_, onThrottleTimer, v.holdMs, 0);
            break;
        }
        traffic.packetsIn[static_cast<uint8_t>(frame.type()) & 15]++;
        traffic.bytesIn += size;
        // Replies are encrypted here and leave in one write at the end (TLS: one record each,
        // but not one socket write and one queued request each).
        const bool goOn = follow(v, off, size, run, &ClientConnection::sendToBackend,
                                 &ClientConnection::queueToClient);
        off += size;
        if (!goOn) return off;
        // A v5 AUTH re-authentication: its token is verified off the loop.
        if (pipeline_->hasJob()) startTokenCheck(std::move(*pipeline_->takeJob()));
        if (pipeline_->backlogged()) pauseClient(kPauseBacklog);
    }
    run.flush(*this);
    flushClient();
    return off;
}

// ------------------------------------------------------------------ carrying out decisions

bool ClientConnection::follow(const inspect::Verdict& v, size_t off, size_t size, ForwardRun& run,
                              Send onward, Send back) {
    using K = inspect::Verdict::Kind;
    if (v.kind == K::Forward) {
        run.extend(*this, off, size);
    } else {
        run.flush(*this);
        if ((v.kind == K::Replace || v.kind == K::Close) && !v.onward.empty())
            (this->*onward)(v.onward.data(), v.onward.size());
    }
    if (!v.reply.empty()) (this->*back)(v.reply.data(), v.reply.size());
    if (v.kind == K::Close) {
        // v3 verdicts carry no reason: a Close verdict is a violation either way.
        wsNoteReason(v.disconnectReason != 0 ? v.disconnectReason : mqtt::reason::ProtocolError);
        if (v.disconnectReason != 0) {
            auto bye = mqtt::encodeDisconnect(mqtt::ProtocolVersion::V5, v.disconnectReason, {});
            sendToClient(bye.data(), bye.size());
        }
        closeAfterFlush();
        return false;
    }
    if (v.endAfter) {
        run.flush(*this);
        closeAfterFlush();
        return false;
    }
    return true;
}

bool ClientConnection::execute(inspect::Action a) {
    using K = inspect::Action::Kind;
    if (a.tcpProbeSeconds != 0) {
        if (int r = enableTcpKeepalive(&client_, a.tcpProbeSeconds); r != 0)
            MOAT_LOG_WARN("TCP keepalive for %s: %s", remote_.c_str(), uv_strerror(r));
    }
    if (!a.toBroker.empty()) sendToBackend(a.toBroker.data(), a.toBroker.size());
    if (!a.toClient.empty()) sendToClient(a.toClient.data(), a.toClient.size());
    if (a.closes()) wsNoteAction(a);
    switch (a.kind) {
        case K::None:
            break;
        case K::Await:
            pauseClient(kPauseState);
            if (a.job->kind == inspect::Job::Kind::Token)
                startTokenCheck(std::move(*a.job));
            else
                startPasswordCheck(std::move(*a.job));
            break;
        case K::OpenBackend:
            pauseClient(kPauseState);
            if (config().anomaly.publishSpikeFactor > 0) {
                publishBaseline_.emplace(
                    config().anomaly.publishSpikeFactor,
                    metrics::PublishBaseline::time_point(std::chrono::milliseconds(now())));
                anomalySubject_ = "client=" + std::string(pipeline_->clientId());
            }
            connectBackend();
            break;
        case K::Close:
            closeAfterFlush();
            return false;
        case K::CloseNow:
            closeNow();
            return false;
    }
    syncTimer();
    return state_ != State::Closing;
}

void ClientConnection::syncTimer() {
    if (state_ == State::Closing) return;
    const uint64_t at = pipeline_->deadline();
    if (at == armedDeadline_) return;
    armedDeadline_ = at;
    if (at == 0) {
        uv_timer_stop(&timer_);
        return;
    }
    const uint64_t t = now();
    armTimer(at > t ? at - t : 0);
}

void ClientConnection::checkClientQueue() {
    if (queuedBytes(reinterpret_cast<uv_stream_t*>(&client_)) <= kHighWater) return;
    if (backendOpen_) pauseBackend();
    // Not only broker traffic: the gateway's own replies (SUBACKs, acks of denied publishes,
    // WebSocket pongs — before CONNECT too) would otherwise pile up without bound for a client
    // that writes and never reads.
    if (state_ == State::Open) pauseClient(kPauseClientQueue);
}

void ClientConnection::onClientWritten(uv_stream_t* s, int status) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(s));
    if (status < 0) {
        if (status != UV_ECANCELED) self->closeNow();
        return;
    }
    if (self->backendPaused_ && queuedBytes(s) < kLowWater) self->resumeBackend();
    if (self->clientPause_ & kPauseClientQueue) {
        // The client is reading what we send (slowly): that is activity while we do not read it.
        self->pipeline_->noteActivity(self->now());
        if (queuedBytes(s) < kLowWater) self->resumeClient(kPauseClientQueue);
    }
}

void ClientConnection::pauseClient(Pause why) {
    if (!(clientPause_ & why)) {
        const char* reason = why == kPauseClientQueue    ? "client_queue"
                             : why == kPauseBackpressure ? "broker_queue"
                             : why == kPauseBacklog      ? "pending_acks"
                                                         : nullptr;
        if (reason) worker_.gateway().clientReadsPaused(reason);
    }
    clientPause_ |= why;
    if (clientReading_) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
        clientReading_ = false;
    }
}

void ClientConnection::resumeClient(Pause why) {
    clientPause_ &= ~why;
    if (clientPause_ != 0 || state_ == State::Closing) return;
    // Packets that arrived while paused are still buffered: handle them first.
    if (!clientIn_.empty()) {
        size_t used = processClientPackets(clientIn_.data(), clientIn_.size());
        if (state_ == State::Closing) return;
        clientIn_.consume(used);
        if (clientPause_ != 0) return;
    }
    if (peerFinished_) {
        closeAfterFlush();  // the client's clean close came behind what was just handled
        return;
    }
    if (!clientReading_) {
        clientReading_ = true;
        uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    }
}

void ClientConnection::onThrottleTimer(uv_timer_t* t) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(t));
    // A throttled client is silent because we stopped reading it, not because it is dead.
    self->pipeline_->noteActivity(self->now());
    self->resumeClient(kPauseThrottle);
}

// ------------------------------------------------------------------ backend side

void ClientConnection::connectBackend() {
    const config::HostPort& addr = config().backend.address;
    sockaddr_storage ss{};
    // Host names were resolved by the gateway's main loop (cached, refreshed off the data path).
    if (!worker_.gateway().backendAddress(addr, ss)) {
        execute(pipeline_->onBackendFailed("backend address does not resolve", false));
        return;
    }
    uv_tcp_init(worker_.loop(), &backend_);
    backend_.data = this;
    ++openHandles_;
    backendOpen_ = true;
    connectReq_.data = this;
    int r = uv_tcp_connect(&connectReq_, &backend_, reinterpret_cast<sockaddr*>(&ss),
                           onBackendConnected);
    if (r != 0)
        execute(
            pipeline_->onBackendFailed(std::string("backend connect: ") + uv_strerror(r), true));
}

void ClientConnection::onBackendConnected(uv_connect_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    if (status == UV_ECANCELED) return;
    if (self->state_ == State::Closing) return;
    if (status != 0) {
        self->execute(self->pipeline_->onBackendFailed(
            std::string("backend unavailable: ") + uv_strerror(status), true));
        return;
    }
    self->backendConnected_ = true;
    uv_tcp_nodelay(&self->backend_, 1);
    if (self->config().backend.proxyProtocol == config::ProxyProtocol::V2) {
        // The broker accounts the device, not the gateway: the header goes first.
        if (!self->local_.valid()) {
            sockaddr_storage ss{};
            int len = sizeof ss;
            uv_tcp_getsockname(&self->client_, reinterpret_cast<sockaddr*>(&ss), &len);
            self->local_ = proxy::addressFromSockaddr(reinterpret_cast<const sockaddr*>(&ss));
        }
        uint8_t header[proxy::kV2MaxEncoded];
        size_t n = proxy::encodeProxyV2(self->peer_, self->local_, header);
        self->sendToBackend(header, n);
    }
    // The CONNECT; the connect deadline keeps running until the broker's CONNACK.
    if (!self->execute(self->pipeline_->onBackendConnected(self->now()))) return;
    self->backendReading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&self->backend_), onBackendAlloc, onBackendRead);
    self->resumeClient(kPauseState);
}

void ClientConnection::onBackendAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    *buf = fromHandle(h)->worker_.readBuffer();
}

void ClientConnection::onBackendRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(s));
    if (self->state_ == State::Closing) {
        self->onClosingBackendRead(n);
        return;
    }
    if (n == 0) return;
    if (n < 0) {
        // Broker closed: deliver what we have, then close the client (it reconnects).
        self->closeAfterFlush();
        return;
    }
    const auto* data = reinterpret_cast<const uint8_t*>(buf->base);
    size_t len = static_cast<size_t>(n);
    if (self->backendIn_.empty()) {
        size_t used = self->processBrokerPackets(data, len);
        if (used < len && self->state_ != State::Closing)
            self->backendIn_.append(data + used, len - used);
    } else {
        self->backendIn_.append(data, len);
        size_t used = self->processBrokerPackets(self->backendIn_.data(), self->backendIn_.size());
        if (self->state_ != State::Closing) self->backendIn_.consume(used);
    }
    // SUBACKs came: a client paused for its backlog of unanswered filters may go on.
    if ((self->clientPause_ & kPauseBacklog) && !self->pipeline_->backlogged())
        self->resumeClient(kPauseBacklog);
    self->flushClient();
    self->syncTimer();  // the broker's CONNACK starts keepalive
}

size_t ClientConnection::processBrokerPackets(const uint8_t* data, size_t len) {
    size_t off = 0;
    // Forwarded runs are only encrypted here; onBackendRead flushes TLS once per read.
    ForwardRun run{data, &ClientConnection::queueToClient};
    while (off < len && state_ == State::Open && pipeline_->stage() == Stage::Established) {
        mqtt::Frame frame;
        mqtt::FrameStatus fs = mqtt::parseFrame(data + off, len - off, frame);
        if (fs == mqtt::FrameStatus::NeedMore) break;
        if (fs == mqtt::FrameStatus::Malformed) {
            follow(pipeline_->onBrokerMalformed(), off, 0, run, &ClientConnection::sendToClient,
                   &ClientConnection::sendToBackend);
            return off;
        }
        if (len - off < frame.totalSize()) break;
        const size_t size = frame.totalSize();
        auto& traffic = worker_.traffic();
        traffic.packetsOut[static_cast<uint8_t>(frame.type()) & 15]++;
        traffic.bytesOut += size;
        const inspect::Verdict v =
            pipeline_->onBrokerPacket(frame, data + off + frame.headerSize, now());
        const bool goOn = follow(v, off, size, run, &ClientConnection::sendToClient,
                                 &ClientConnection::sendToBackend);
        off += size;
        if (!goOn) return off;
    }
    run.flush(*this);
    return off;
}

void ClientConnection::sendToBackend(const uint8_t* data, size_t len) {
    if (!backendConnected_ || len == 0) return;
    auto* stream = reinterpret_cast<uv_stream_t*>(&backend_);
    if (writeToStream(stream, data, len, onBackendWritten) < 0) {
        closeAfterFlush();
        return;
    }
    if (queuedBytes(stream) > kHighWater) pauseClient(kPauseBackpressure);
}

void ClientConnection::onBackendWritten(uv_stream_t* s, int status) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(s));
    if (status < 0) {
        if (status != UV_ECANCELED) self->closeAfterFlush();
        return;
    }
    if ((self->clientPause_ & kPauseBackpressure) && queuedBytes(s) < kLowWater)
        self->resumeClient(kPauseBackpressure);
}

void ClientConnection::pauseBackend() {
    backendPaused_ = true;
    if (backendReading_) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&backend_));
        backendReading_ = false;
    }
}

void ClientConnection::resumeBackend() {
    backendPaused_ = false;
    if (state_ != State::Open || !backendConnected_ || backendReading_) return;
    backendReading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&backend_), onBackendAlloc, onBackendRead);
}

// ------------------------------------------------------------------ timers, reload, closing

void ClientConnection::armTimer(uint64_t ms) {
    uv_timer_start(&timer_, onTimer, ms, 0);
}

void ClientConnection::onTimer(uv_timer_t* t) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(t));
    self->armedDeadline_ = 0;
    if (self->state_ == State::Closing) {
        self->onCloseTimer();
        return;
    }
    if (self->state_ == State::TlsHandshake) self->onHandshakeFailed("handshake_timeout");
    // A client we stopped reading (broker back-pressure, throttle, pending acks) is silent
    // because of us. One we stopped reading because it does not read what we send is not:
    // only its draining queue counts (onClientWritten), so a client that neither reads nor
    // can send is closed at its keepalive deadline. While it also does not read, the other
    // pauses may be its own doing too (a SUBACK it waits for sits behind deliveries it does
    // not read).
    const uint8_t p = self->clientPause_;
    const bool pausedByUs = (p & ~kPauseClientQueue) && !(p & kPauseClientQueue);
    self->execute(self->pipeline_->onTimer(self->now(), pausedByUs));
}

void ClientConnection::applySnapshot(const Snapshot& snapshot) {
    snapshot_ = worker_.snapshot();
    // Before the transport is up there is nothing to re-check (CONNECT re-verifies).
    if (state_ != State::Open) {
        pipeline_->setOptions(snapshot_->pipeline);
        return;
    }
    execute(pipeline_->onReload(snapshot_->pipeline, certificateProblem(snapshot), now()));
}

void ClientConnection::drain() {
    if (state_ == State::Closing) return;
    if (state_ != State::Open) {
        closeAfterFlush();
        return;
    }
    wsNoteReason(mqtt::reason::ServerShuttingDown);
    inspect::Action a = pipeline_->onDrain();
    if (!a.closes()) a.kind = inspect::Action::Kind::Close;
    execute(std::move(a));
}

}  // namespace moat::net
