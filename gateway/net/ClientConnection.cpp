#include "gateway/net/ClientConnection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cstring>

#include "gateway/inspect/ForwardedCredentials.h"
#include "gateway/inspect/KeepAlivePolicy.h"
#include "gateway/integrity/PublishRewrite.h"
#include "gateway/integrity/SignedPublish.h"
#include "gateway/metrics/JsonEscape.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/StreamWriter.h"
#include "gateway/net/TcpKeepalive.h"
#include "gateway/net/Worker.h"
#include "gateway/tls/CertIdentity.h"

namespace moat::net {

namespace rc = mqtt::reason;
using mqtt::PacketType;

namespace {

// Backpressure water marks on the queue of the side we write to. Above the high mark we
// stop reading from the other side; below the low mark we read again.
constexpr size_t kHighWater = 256 * 1024;
constexpr size_t kLowWater = 64 * 1024;
// How long a closing connection may take to flush its last bytes (CONNACK, DISCONNECT).
constexpr uint64_t kCloseFlushMs = 2000;

std::string formatAddress(const sockaddr_storage& ss, std::string* ipOut) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        // IPv4-mapped addresses are reported as plain IPv4 so per-IP limits agree.
        if (std::strncmp(ip, "::ffff:", 7) == 0 && std::strchr(ip + 7, '.')) {
            std::memmove(ip, ip + 7, std::strlen(ip + 7) + 1);
        }
    }
    if (ipOut) *ipOut = ip;
    if (ss.ss_family == AF_INET6 && !std::strchr(ip, '.'))
        return "[" + std::string(ip) + "]:" + std::to_string(port);
    return std::string(ip) + ":" + std::to_string(port);
}

ClientConnection* fromHandle(const uv_handle_t* h) {
    return static_cast<ClientConnection*>(h->data);
}

}  // namespace

ClientConnection::ClientConnection(Worker& worker, WorkerListener& listener)
    : worker_(worker),
      listener_(listener),
      snapshot_(worker.snapshot()),
      id_(worker.nextConnectionId()) {
    worker_.attach(this);
}

ClientConnection::~ClientConnection() {
    worker_.detach(this);
}

bool ClientConnection::accept(uv_stream_t* server) {
    uv_tcp_init(worker_.loop(), &client_);
    client_.data = this;
    ++openHandles_;
    uv_timer_init(worker_.loop(), &timer_);
    timer_.data = this;
    ++openHandles_;
    uv_timer_init(worker_.loop(), &throttleTimer_);
    throttleTimer_.data = this;
    ++openHandles_;
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&client_)) != 0) {
        closeNow();
        return false;
    }
    sockaddr_storage ss{};
    int len = sizeof ss;
    uv_tcp_getpeername(&client_, reinterpret_cast<sockaddr*>(&ss), &len);
    remote_ = formatAddress(ss, &ip_);
    peer_ = proxy::addressFromSockaddr(reinterpret_cast<const sockaddr*>(&ss));
    uv_tcp_nodelay(&client_, 1);

    auto proxyIt = snapshot_->proxy.find(listener_.name);
    if (proxyIt == snapshot_->proxy.end()) {
        armTimer(config().limits.handshakeTimeout.count());
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
    armTimer(config().limits.handshakeTimeout.count());
    clientReading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    return true;
}

bool ClientConnection::start() {
    Gateway& gw = worker_.gateway();
    if (!gw.admit(worker_, listener_.name, ip_)) {
        closeNow();
        return false;
    }
    admitted_ = true;

    auto tlsIt = snapshot_->tls.find(listener_.name);
    if (tlsIt != snapshot_->tls.end()) {
        tls_ = std::make_unique<tls::TlsSession>(tlsIt->second->native());
        handshakeGeneration_ = snapshot_->generation;
        state_ = State::TlsHandshake;
    } else {
        state_ = State::AwaitConnect;
    }
    if (!clientReading_) {
        clientReading_ = true;
        uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    }
    return true;
}

void ClientConnection::onProxyHeaderBytes(const uint8_t* data, size_t len) {
    // Bytes are copied only when the header arrives in pieces (rare: balancers send it in
    // the first segment).
    const uint8_t* buf = data;
    size_t n = len;
    if (!clientIn_.empty()) {
        clientIn_.append(data, len);
        buf = clientIn_.data();
        n = clientIn_.size();
    }
    const proxy::ParseResult r =
        proxy::parseProxyHeader(buf, n, snapshot_->proxy.at(listener_.name).versions);
    if (r.status == proxy::ParseStatus::NeedMore) {
        if (clientIn_.empty()) clientIn_.append(data, len);
        return;
    }
    if (r.status == proxy::ParseStatus::Error) {
        worker_.gateway().protocolError("proxy_header");
        audit("protocol_error", "", "", "",
              std::string("PROXY header: ") + proxy::parseErrorName(r.error));
        closeNow();
        return;
    }
    if (!r.header.local) {
        peer_ = r.header.source;
        local_ = r.header.destination;
        remote_ = peer_.text();
        ip_ = peer_.ipText();
    }
    // What follows the header in the same read is the start of the TLS handshake (or of
    // CONNECT): it must reach the next layer, from storage that outlives clientIn_.
    std::vector<uint8_t> rest;
    const uint8_t* tail = buf + r.length;
    size_t tailLen = n - r.length;
    if (!clientIn_.empty()) {
        rest.assign(tail, tail + tailLen);
        tail = rest.data();
        clientIn_.release();
    }
    if (!start()) return;
    if (tailLen > 0) onClientBytes(tail, tailLen);
}

// ------------------------------------------------------------------ client side

void ClientConnection::onClientAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    *buf = fromHandle(h)->worker_.readBuffer();
}

void ClientConnection::onClientRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(s));
    if (n > 0) {
        // Not keepalive activity: only a complete packet is (processClientPackets).
        self->onClientBytes(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n));
        return;
    }
    if (n == 0) return;
    // EOF or error: whatever the client sent is already forwarded; the broker sees the
    // connection go away (and publishes the will, as it would for a dropped device).
    if (self->state_ == State::TlsHandshake)
        self->onHandshakeFailed("closed during the TLS handshake");
    self->closeNow();
}

void ClientConnection::onClientBytes(const uint8_t* data, size_t len) {
    if (state_ == State::Closing) return;
    if (state_ == State::ProxyHeader) {
        onProxyHeaderBytes(data, len);
        return;
    }
    if (!tls_) {
        onClientPlaintext(data, len);
        return;
    }
    tls_->feed(data, len);
    bool wasHandshaking = !tls_->handshakeComplete();
    std::vector<uint8_t>& plain = worker_.plaintextScratch();
    plain.clear();
    tls::TlsSession::Status st = tls_->read(plain);
    if (wasHandshaking && tls_->handshakeComplete()) {
        worker_.gateway().tlsHandshakeOk(listener_.name);
        state_ = State::AwaitConnect;
    }
    if (st == tls::TlsSession::Status::Error) {
        if (wasHandshaking) onHandshakeFailed(tls_->lastError());
        flushTls();  // send the alert
        closeAfterFlush();
        return;
    }
    if (!plain.empty()) onClientPlaintext(plain.data(), plain.size());
    if (state_ == State::Closing) return;
    flushTls();
    // The handshake grew the session's output buffer to a few KiB (certificates); steady
    // traffic needs far less, and an idle device should not carry it.
    if (wasHandshaking && tls_->handshakeComplete()) tls_->releaseIdleBuffers();
    if (st == tls::TlsSession::Status::Closed) closeAfterFlush();
}

void ClientConnection::onHandshakeFailed(const std::string& why) {
    worker_.gateway().tlsHandshakeFailed(listener_.name);
    if (tls_->native() != nullptr && tls_->verifyResult() != X509_V_OK) {
        // A certificate that was presented and failed verification is a failed
        // authentication (counts towards bans), not just a TLS error.
        worker_.gateway().authFailed(worker_, "certificate", ip_, "");
        audit("auth_failure", "", "", "", "certificate: " + why);
    } else if (tls_->handshakeStarted()) {
        // No shared group / version / cipher, garbage, or a ClientHello and then nothing: the
        // gateway may already have paid for a key exchange. A silent TCP probe is not counted,
        // nor a balancer's own check (PROXY LOCAL keeps its address): it must never be banned.
        auto proxyIt = snapshot_->proxy.find(listener_.name);
        if (proxyIt == snapshot_->proxy.end() || !proxyIt->second.trusted.contains(peer_))
            worker_.gateway().handshakeFailed(ip_);
        audit("protocol_error", "", "", "", "tls handshake: " + why);
    }
}

void ClientConnection::onClientPlaintext(const uint8_t* data, size_t len) {
    if (clientIn_.empty()) {
        size_t used = processClientPackets(data, len);
        if (used < len && state_ != State::Closing) clientIn_.append(data + used, len - used);
    } else {
        clientIn_.append(data, len);
        size_t used = processClientPackets(clientIn_.data(), clientIn_.size());
        if (state_ != State::Closing) clientIn_.consume(used);
    }
}

size_t ClientConnection::processClientPackets(const uint8_t* data, size_t len) {
    size_t off = 0;
    ForwardRun run{data, &ClientConnection::sendToBackend};
    auto flushRun = [&] { run.flush(*this); };
    const uint32_t maxPacket = config().limits.maxPacketSize;
    while (off < len && state_ != State::Closing && clientPause_ == 0 &&
           (state_ == State::AwaitConnect || state_ == State::Established)) {
        mqtt::Frame frame;
        mqtt::FrameStatus fs = mqtt::parseFrame(data + off, len - off, frame);
        if (fs == mqtt::FrameStatus::NeedMore) break;
        if (fs == mqtt::FrameStatus::Malformed) {
            flushRun();
            onProtocolError(rc::MalformedPacket, "bad fixed header");
            closeWithReason(rc::MalformedPacket);
            return off;
        }
        // Judged from the fixed header, before the body is buffered.
        if (frame.totalSize() > maxPacket) {
            flushRun();
            onProtocolError(rc::PacketTooLarge, "packet exceeds max_packet_size");
            worker_.gateway().rateLimited("max_packet_size");
            closeWithReason(rc::PacketTooLarge);
            return off;
        }
        if (len - off < frame.totalSize()) break;
        // A whole packet: this, not a byte of one, is keepalive activity (SlowITe).
        keepAliveClock_.packet(uv_now(worker_.loop()));
        const uint8_t* whole = data + off;
        const uint8_t* body = whole + frame.headerSize;
        const size_t size = frame.totalSize();
        if (state_ == State::Established && !admitPacket(frame.type(), size)) break;
        auto& traffic = worker_.traffic();
        traffic.packetsIn[static_cast<uint8_t>(frame.type()) & 15]++;
        traffic.bytesIn += size;

        if (state_ == State::AwaitConnect) {
            off += size;
            if (frame.type() != PacketType::Connect) {
                onProtocolError(rc::ProtocolError, "first packet is not CONNECT");
                closeNow();
                return off;
            }
            handleConnect(frame, body, whole);
            continue;  // the loop stops: state changed
        }

        const inspect::Verdict v = session_->onClientPacket(frame, body);
        // Replies are encrypted here and leave in one write at the end (TLS: one record each,
        // but not one socket write and one queued request each).
        const bool goOn = follow(v, frame.type(), off, size, run, &ClientConnection::sendToBackend,
                                 &ClientConnection::queueToClient);
        off += size;
        if (!goOn) return off;
        if (session_->backlogged()) pauseClient(kPauseBacklog);
    }
    flushRun();
    flushTls();
    return off;
}

bool ClientConnection::follow(const inspect::Verdict& v, mqtt::PacketType type, size_t off,
                              size_t size, ForwardRun& run, Send onward, Send back) {
    if (v.kind == inspect::Verdict::Kind::Forward) {
        run.extend(*this, off, size);
    } else {
        run.flush(*this);
        if (v.kind == inspect::Verdict::Kind::Replace)
            (this->*onward)(v.onward.data(), v.onward.size());
    }
    if (!v.reply.empty()) (this->*back)(v.reply.data(), v.reply.size());
    if (v.kind == inspect::Verdict::Kind::Close) {
        closeWithReason(v.disconnectReason);
        return false;
    }
    if (type == PacketType::Disconnect) {
        run.flush(*this);
        closeAfterFlush();
        return false;
    }
    return true;
}

void ClientConnection::handleConnect(const mqtt::Frame& frame, const uint8_t* body,
                                     const uint8_t* whole) {
    connect_ = std::make_unique<mqtt::ConnectPacket>();
    uint8_t r = mqtt::decodeConnect(body, frame.remainingLength, *connect_);
    if (r != rc::Success) {
        onProtocolError(r, "malformed CONNECT");
        if (r == rc::UnsupportedProtocolVersion) {
            // Answer in the oldest format every version understands (v3 return code 1).
            connect_->version = mqtt::ProtocolVersion::V311;
            refuseConnect(rc::UnsupportedProtocolVersion, "unsupported protocol version");
        } else if (connect_->version == mqtt::ProtocolVersion::V5) {
            refuseConnect(r, "malformed CONNECT");
        } else {
            closeNow();
        }
        return;
    }
    // The handshake verified the certificate against the CRL of its snapshot; a reload since
    // may have revoked it (applySnapshot re-verifies open connections, this closes the gap
    // for good). Without a reload the handshake's verdict is the current one.
    if (long err = snapshot_->generation == handshakeGeneration_ ? X509_V_OK
                                                                 : certificateError(*snapshot_);
        err != X509_V_OK) {
        worker_.gateway().authFailed(worker_, "certificate", ip_, "");
        refuseConnect(rc::NotAuthorized, std::string("certificate no longer valid: ") +
                                             X509_verify_cert_error_string(err));
        return;
    }
    connectBytes_.assign(whole, whole + frame.totalSize());
    state_ = State::Authenticating;
    pauseClient(kPauseState);

    Gateway& gw = worker_.gateway();
    // Keepalive (inspect/KeepAlivePolicy.h): v5 clients are told the Server Keep Alive; a v3
    // keepalive out of range goes on unchanged with TCP probes reaping dead peers, or is
    // refused with `v3_keepalive: refuse`.
    const uint64_t maxKa = config().limits.maxKeepalive.count() / 1000;
    const inspect::KeepAliveDecision ka =
        inspect::decideKeepAlive(connect_->version, connect_->keepAlive, maxKa,
                                 config().limits.v3Keepalive == config::V3Keepalive::Refuse);
    if (ka.refuse) {
        refuseConnect(rc::ClientIdentifierNotValid, "keepalive outside max_keepalive");
        return;
    }
    keepAlive_ = ka.effective;
    if (ka.tcpProbes) {
        if (int r = enableTcpKeepalive(&client_, static_cast<uint32_t>(maxKa)); r != 0)
            MOAT_LOG_WARN("TCP keepalive for %s: %s", remote_.c_str(), uv_strerror(r));
    }

    inspect::CertFactor cert;
    if (tls_ && tls_->peerCertificate()) {
        cert.presented = true;
        tls::CertInfo info = tls::inspectCertificate(tls_->peerCertificate());
        cert.identity = tls::identityFromCert(info, config().auth.identityFrom);
    }
    certFactor_ = cert;
    inspect::Authenticator auth(config().auth);
    inspect::Authenticator::Pending pending =
        auth.begin(*connect_, cert, snapshot_->passwords.get());
    if (pending.done) {
        finishAuth(pending.outcome);
        return;
    }
    if (gw.isIpBanned(ip_)) {
        refuseConnect(rc::Banned, "banned");
        return;
    }
    startPasswordCheck(std::move(pending));
}

void ClientConnection::finishAuth(const inspect::AuthOutcome& authOutcome, bool passwordCharged) {
    Gateway& gw = worker_.gateway();
    // Rights, limits and credentials rules come from the snapshot current now, not the one
    // authentication started with (a reload during the password check may have narrowed them).
    snapshot_ = worker_.snapshot();
    const inspect::AuthOutcome outcome = inspect::checkForwardedUsername(
        config().backend.credentials, authOutcome, connect_->username);
    bool passwordFailed = false;
    for (const auto& f : outcome.factors) {
        gw.authCounted(f.method == config::AuthMethod::Certificate ? "certificate" : "password",
                       f.success);
        passwordFailed |= f.method == config::AuthMethod::Password && !f.success;
    }
    if (!outcome.ok) {
        std::string who = connect_->username.value_or("");
        if (!(passwordCharged && passwordFailed))
            gw.authFailed(worker_, outcome.factors.empty() ? "" : "password", ip_, who);
        identity_ = who;
        refuseConnect(outcome.v5Reason, outcome.reason);
        return;
    }
    identity_ = outcome.identity;
    if (gw.isIpBanned(ip_)) {
        refuseConnect(rc::Banned, "banned");
        return;
    }
    gw.loggedIn(identity_, ip_);
    auto rights = snapshot_->policy->rightsFor(identity_, connect_->clientId);
    if (connect_->willFlag) {
        policy::Decision d = rights->checkPublish(connect_->willTopic);
        if (!d.allowed) {
            gw.authzDenied("will");
            audit("authz_denied", "will", connect_->willTopic, d.describe(),
                  "will topic not allowed");
            onDeniedTopic(connect_->willTopic);
            refuseConnect(rc::NotAuthorized, "will topic not allowed");
            return;
        }
    }
    // The broker publishes the will for the client, later, when nothing can be refused any
    // more: integrity.rules apply to it here (v5: signature in the will properties; v3:
    // trailer at the end of the will payload, stripped below).
    std::shared_ptr<integrity::Checker> integrityChecker = makeIntegrityChecker(*snapshot_);
    size_t willTrailer = 0;
    if (connect_->willFlag && integrityChecker) {
        integrity::Checker::Outcome o =
            integrity::checkWill(*integrityChecker, connect_->willTopic, connect_->willPayload,
                                 connect_->willProperties, v5());
        if (o.matched() && o.failure != integrity::Failure::None) {
            onIntegrityDenied(connect_->willTopic, integrityChecker->rule(o.rule).name,
                              integrity::failureReason(o.failure));
            refuseConnect(rc::NotAuthorized, "will not validly signed");
            return;
        }
        willTrailer = o.trailer;
    }

    // What the broker sees (backend.credentials); re-encode only when something changes.
    bool rewrite = keepAlive_ != connect_->keepAlive;
    mqtt::ConnectPacket onward = *connect_;
    onward.keepAlive = keepAlive_;
    if (willTrailer) {
        onward.willPayload.resize(onward.willPayload.size() - willTrailer);
        rewrite = true;
    }
    // stamp_identity holds for the will too: subscribers must not get a forged moat-identity.
    if (connect_->willFlag && v5() && config().integrity.stampIdentity) {
        integrity::stampWillProperties(onward.willProperties, identity_);
        rewrite = true;
    } else if (connect_->willFlag && v5()) {
        willForgedIdentity_ = std::any_of(
            connect_->willProperties.begin(), connect_->willProperties.end(),
            [](const mqtt::Property& p) {
                return p.id == mqtt::prop::UserProperty && p.str == integrity::kIdentityProperty;
            });
    }
    switch (config().backend.credentials) {
        case config::BackendCredentials::Identity:
            if (identity_ != "anonymous" || connect_->username) {
                rewrite |= onward.username != identity_ || onward.password.has_value();
                onward.username = identity_;
            }
            if (onward.password) rewrite = true;
            onward.password.reset();
            break;
        case config::BackendCredentials::Passthrough:
            break;
        case config::BackendCredentials::Strip:
            rewrite |= onward.username.has_value() || onward.password.has_value();
            onward.username.reset();
            onward.password.reset();
            break;
    }
    if (rewrite) connectBytes_ = mqtt::encodeConnect(onward);
    // The password is not needed any more: do not keep it in memory.
    if (connect_->password) {
        OPENSSL_cleanse(connect_->password->data(), connect_->password->size());
        connect_->password.reset();
    }

    inspect::SessionOptions opts;
    opts.onPublishDenied = config().policy.onPublishDenied;
    opts.checkDeliveries = config().policy.checkDeliveries;
    opts.maxSubscriptions = config().limits.maxSubscriptions;
    opts.maxUserProperties = config().limits.maxUserProperties;
    opts.maxInflight = config().limits.maxInflight;
    if (v5() && keepAlive_ != connect_->keepAlive) opts.serverKeepAlive = keepAlive_;
    opts.connectSessionExpiryZero = connect_->sessionExpiry().value_or(0) == 0;
    opts.integrity = std::move(integrityChecker);
    if (config().integrity.stampIdentity) opts.stampIdentity = identity_;
    publishBucket_ = inspect::TokenBucket(config().limits.publishRate.perSecond);
    bytesBucket_ = inspect::TokenBucket(config().limits.publishBytesRate.perSecond);
    controlBucket_ = inspect::TokenBucket(config().limits.controlPacketRate.perSecond);
    if (config().anomaly.publishSpikeFactor > 0) {
        publishBaseline_.emplace(config().anomaly.publishSpikeFactor,
                                 metrics::PublishBaseline::time_point(
                                     std::chrono::milliseconds(uv_now(worker_.loop()))));
        anomalySubject_ = "client=" + connect_->clientId;
    }
    session_ =
        std::make_unique<inspect::Session>(connect_->version, std::move(rights), opts, *this);
    state_ = State::ConnectingBackend;
    connectBackend();
}

void ClientConnection::refuseConnect(uint8_t v5Reason, const std::string& why) {
    audit("auth_failure", "", "", "", why);
    std::vector<uint8_t> connack;
    if (v5()) {
        connack = mqtt::encodeConnack(mqtt::ProtocolVersion::V5, false, v5Reason, {});
    } else {
        connack = mqtt::encodeConnack(connect_ ? connect_->version : mqtt::ProtocolVersion::V311,
                                      false, mqtt::v3ConnackCodeFor(v5Reason), {});
    }
    sendToClient(connack.data(), connack.size());
    closeAfterFlush();
}

void ClientConnection::sendToClient(const uint8_t* data, size_t len) {
    if (len == 0) return;
    if (tls_) {
        tls_->write(data, len);
        flushTls();
        return;
    }
    if (writeToStream(reinterpret_cast<uv_stream_t*>(&client_), data, len, onClientWritten) < 0) {
        closeNow();
        return;
    }
    checkClientQueue();
}

void ClientConnection::checkClientQueue() {
    if (queuedBytes(reinterpret_cast<uv_stream_t*>(&client_)) <= kHighWater) return;
    if (backendOpen_) pauseBackend();
    // Not only broker traffic: the gateway's own replies (SUBACKs, acks of denied publishes)
    // would otherwise pile up without bound for a client that writes and never reads.
    if (state_ == State::Established) pauseClient(kPauseClientQueue);
}

void ClientConnection::flushTls() {
    if (!tls_ || uv_is_closing(reinterpret_cast<uv_handle_t*>(&client_))) return;
    std::span<const uint8_t> out = tls_->outputView();
    if (out.empty()) return;
    // Straight from the session's buffer: writeToStream copies only what the kernel did not
    // take at once (uv_try_write), so the common flush costs no allocation and no copy.
    const int rc = writeToStream(reinterpret_cast<uv_stream_t*>(&client_), out.data(), out.size(),
                                 onClientWritten);
    tls_->consumeOutput(out.size());
    if (rc < 0) {
        closeNow();
        return;
    }
    checkClientQueue();
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
        self->keepAliveClock_.packet(uv_now(self->worker_.loop()));
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
    if (!clientReading_) {
        clientReading_ = true;
        uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    }
}

// ------------------------------------------------------------------ backend side

void ClientConnection::connectBackend() {
    const config::HostPort& addr = config().backend.address;
    sockaddr_storage ss{};
    // Host names were resolved by the gateway's main loop (cached, refreshed off the data path).
    if (!worker_.gateway().backendAddress(addr, ss)) {
        refuseConnect(rc::ServerUnavailable, "backend address does not resolve");
        return;
    }
    uv_tcp_init(worker_.loop(), &backend_);
    backend_.data = this;
    ++openHandles_;
    backendOpen_ = true;
    connectReq_.data = this;
    armTimer(config().backend.connectTimeout.count());
    int r = uv_tcp_connect(&connectReq_, &backend_, reinterpret_cast<sockaddr*>(&ss),
                           onBackendConnected);
    if (r != 0) {
        worker_.gateway().setBackendReachable(false);
        refuseConnect(rc::ServerUnavailable, std::string("backend connect: ") + uv_strerror(r));
    }
}

void ClientConnection::onBackendConnected(uv_connect_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    if (status == UV_ECANCELED) return;
    if (self->state_ == State::Closing) return;
    Gateway& gw = self->worker_.gateway();
    if (status != 0) {
        gw.setBackendReachable(false);
        self->refuseConnect(rc::ServerUnavailable,
                            std::string("backend unavailable: ") + uv_strerror(status));
        return;
    }
    self->backendConnected_ = true;
    uv_tcp_nodelay(&self->backend_, 1);
    self->state_ = State::Established;
    // The session starts when the broker accepts (onBrokerConnack): until then the timer keeps
    // running as the backend.connect_timeout deadline, which covers TCP connect + CONNACK.
    self->connackPending_ = true;
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
    self->sendToBackend(self->connectBytes_.data(), self->connectBytes_.size());
    self->connectBytes_.clear();
    self->connectBytes_.shrink_to_fit();
    self->backendReading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&self->backend_), onBackendAlloc, onBackendRead);
    self->resumeClient(kPauseState);
}

void ClientConnection::onBackendAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    *buf = fromHandle(h)->worker_.readBuffer();
}

void ClientConnection::onBackendRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(s));
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
    if ((self->clientPause_ & kPauseBacklog) && !self->session_->backlogged())
        self->resumeClient(kPauseBacklog);
    self->flushTls();
}

size_t ClientConnection::processBrokerPackets(const uint8_t* data, size_t len) {
    size_t off = 0;
    // Forwarded runs are only encrypted here; onBackendRead flushes TLS once per read.
    ForwardRun run{data, &ClientConnection::queueToClient};
    auto flushRun = [&] { run.flush(*this); };
    while (off < len && state_ == State::Established) {
        mqtt::Frame frame;
        mqtt::FrameStatus fs = mqtt::parseFrame(data + off, len - off, frame);
        if (fs == mqtt::FrameStatus::NeedMore) break;
        if (fs == mqtt::FrameStatus::Malformed) {
            flushRun();
            closeBackendMalformed("bad fixed header");
            return off;
        }
        if (len - off < frame.totalSize()) break;
        const size_t size = frame.totalSize();
        if (connackPending_) {
            mqtt::ConnackPacket ack;
            if (frame.type() != PacketType::Connack) {
                flushRun();
                closeBackendMalformed("broker packet before its CONNACK");
                return off;
            }
            const uint8_t* ackBody = data + off + frame.headerSize;
            if (mqtt::decodeConnack(ackBody, frame.remainingLength, connect_->version, ack) !=
                    rc::Success &&
                !(v5() && mqtt::isV311ConnackRefusal(ackBody, frame.remainingLength))) {
                flushRun();
                closeBackendMalformed("malformed CONNACK from the broker");
                return off;
            }
            onBrokerConnack(frame, data + off + frame.headerSize);
        }
        auto& traffic = worker_.traffic();
        traffic.packetsOut[static_cast<uint8_t>(frame.type()) & 15]++;
        traffic.bytesOut += size;

        const inspect::Verdict v = session_->onBrokerPacket(frame, data + off + frame.headerSize);
        const bool goOn = follow(v, frame.type(), off, size, run, &ClientConnection::sendToClient,
                                 &ClientConnection::sendToBackend);
        off += size;
        if (!goOn) return off;
    }
    flushRun();
    return off;
}

void ClientConnection::onBrokerConnack(const mqtt::Frame& frame, const uint8_t* body) {
    connackPending_ = false;
    Gateway& gw = worker_.gateway();
    gw.backendConnackReceived();
    // Byte 2 of CONNACK is the v3 return code / v5 reason code (0: accepted).
    const uint8_t code = frame.remainingLength >= 2 ? body[1] : rc::UnspecifiedError;
    if (code != rc::Success) {
        char why[64];
        std::snprintf(why, sizeof why, "broker refused the connection (code 0x%02x)", code);
        audit("auth_failure", "", "", "", why);
        return;  // forwarded to the client; the broker closes
    }
    audit("connect", "", "", "", "");
    // Keepalive enforcement replaces the connect deadline: 1.5 x keepalive of silence.
    keepAliveClock_.start(keepAlive_, uv_now(worker_.loop()));
    if (keepAliveClock_.enabled())
        armTimer(keepAliveClock_.limitMs());
    else
        uv_timer_stop(&timer_);
}

void ClientConnection::queueToClient(const uint8_t* data, size_t len) {
    if (tls_)
        tls_->write(data, len);
    else
        sendToClient(data, len);
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
    if (state_ != State::Established || backendReading_) return;
    backendReading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&backend_), onBackendAlloc, onBackendRead);
}

// ------------------------------------------------------------------ publish limits

bool ClientConnection::admitPacket(mqtt::PacketType type, size_t bytes) {
    const bool publish = type == PacketType::Publish;
    const bool control = type == PacketType::Pingreq || type == PacketType::Subscribe ||
                         type == PacketType::Unsubscribe;
    if (!publish && !control) return true;
    const auto nowMs = std::chrono::milliseconds(uv_now(worker_.loop()));
    // The spike baseline counts a publish once, when admitted: a throttled one stays buffered
    // and is judged again when reading resumes.
    auto admitted = [&] {
        if (publishBaseline_) {
            if (auto a = publishBaseline_->onPublish(anomalySubject_,
                                                     metrics::PublishBaseline::time_point(nowMs)))
                worker_.gateway().raiseAnomaly(*a, listener_.name, remote_, connect_->clientId,
                                               identity_);
        }
        return true;
    };
    const auto now = inspect::SteadyTime(nowMs);
    const char* limit = nullptr;
    double need = 1;
    inspect::TokenBucket* waitOn = nullptr;
    if (control) {
        if (controlBucket_.tryTake(1, now)) return true;
        limit = "control_packet_rate";
        waitOn = &controlBucket_;
    } else if (publishBucket_.unlimited() && bytesBucket_.unlimited()) {
        return admitted();
    } else if (!publishBucket_.tryTake(1, now)) {
        limit = "publish_rate";
        waitOn = &publishBucket_;
    } else if (!bytesBucket_.tryTake(static_cast<double>(bytes), now)) {
        publishBucket_.consume(-1, now);  // give the message token back
        limit = "publish_bytes_rate";
        waitOn = &bytesBucket_;
        need = static_cast<double>(bytes);
    } else {
        return admitted();
    }

    worker_.gateway().rateLimited(limit);
    audit("rate_limited", publish ? "publish" : "", "", "", limit);
    if (config().limits.onExceed == config::OnExceed::Disconnect) {
        closeWithReason(std::string_view(limit) == "publish_bytes_rate" ? rc::QuotaExceeded
                                                                        : rc::MessageRateTooHigh);
        return false;
    }
    // Throttle: this packet stays buffered and nothing more is read from the client until the
    // bucket has refilled; TCP flow control then slows the device down. Nothing is lost.
    uint64_t ms = std::max<int64_t>(
        1, std::chrono::ceil<std::chrono::milliseconds>(waitOn->timeUntil(need, now)).count());
    pauseClient(kPauseThrottle);
    uv_timer_start(&throttleTimer_, onThrottleTimer, ms, 0);
    return false;
}

void ClientConnection::onThrottleTimer(uv_timer_t* t) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(t));
    // A throttled client is silent because we stopped reading it, not because it is dead.
    self->keepAliveClock_.packet(uv_now(self->worker_.loop()));
    self->resumeClient(kPauseThrottle);
}

// ------------------------------------------------------------------ timers, closing

void ClientConnection::armTimer(uint64_t ms) {
    uv_timer_start(&timer_, onTimer, ms, 0);
}

void ClientConnection::onTimer(uv_timer_t* t) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(t));
    switch (self->state_) {
        case State::ProxyHeader:
        case State::TlsHandshake:
        case State::AwaitConnect:
        case State::Authenticating:
            if (self->state_ == State::TlsHandshake) self->onHandshakeFailed("handshake_timeout");
            self->worker_.gateway().rateLimited("handshake_timeout");
            self->audit("disconnect", "", "", "", "handshake_timeout");
            self->closeNow();
            return;
        case State::ConnectingBackend:
            self->worker_.gateway().setBackendReachable(false);
            self->refuseConnect(rc::ServerUnavailable, "backend connect timeout");
            return;
        case State::Established: {
            if (self->connackPending_) {
                // The broker took the TCP connection and CONNECT but does not answer.
                self->worker_.gateway().backendConnackTimedOut();
                self->refuseConnect(rc::ServerUnavailable, "backend CONNACK timeout");
                return;
            }
            const uint64_t now = uv_now(self->worker_.loop());
            // A client we stopped reading (broker back-pressure, throttle, pending acks) is
            // silent because of us. One we stopped reading because it does not read what we
            // send is not: only its draining queue counts (onClientWritten), so a client that
            // neither reads nor can send is closed at its keepalive deadline instead of holding
            // its connection and buffers for ever.
            // While it also does not read, the other pauses may be its own doing too (a
            // SUBACK it waits for sits behind deliveries it does not read): only its draining
            // queue counts then.
            if ((self->clientPause_ & ~kPauseClientQueue) &&
                !(self->clientPause_ & kPauseClientQueue))
                self->keepAliveClock_.packet(now);
            const uint64_t left = self->keepAliveClock_.remaining(now);
            if (left == 0) {
                self->audit("disconnect", "", "", "", "keepalive_timeout");
                self->closeWithReason(rc::KeepAliveTimeout);
            } else {
                self->armTimer(left);
            }
            return;
        }
        case State::Closing:
            self->closeNow();
            return;
    }
}

void ClientConnection::closeWithReason(uint8_t v5Reason) {
    if (state_ == State::Closing) return;
    if (v5() && v5Reason != 0 &&
        (state_ == State::Established || state_ == State::ConnectingBackend)) {
        auto bytes = mqtt::encodeDisconnect(mqtt::ProtocolVersion::V5, v5Reason, {});
        sendToClient(bytes.data(), bytes.size());
    }
    closeAfterFlush();
}

void ClientConnection::drain() {
    if (state_ == State::Closing) return;
    if (state_ == State::Established && v5()) {
        auto bytes = mqtt::encodeDisconnect(mqtt::ProtocolVersion::V5, rc::ServerShuttingDown, {});
        sendToClient(bytes.data(), bytes.size());
    }
    closeAfterFlush();
}

void ClientConnection::closeAfterFlush() {
    if (state_ == State::Closing) return;
    flushTls();
    state_ = State::Closing;
    if (clientReading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
    clientReading_ = false;
    closeBackendAfterFlush();
    armTimer(kCloseFlushMs);
    shutdownReq_.data = this;
    if (uv_shutdown(&shutdownReq_, reinterpret_cast<uv_stream_t*>(&client_), onClientShutdown) != 0)
        closeNow();
    else
        shutdownPending_ = true;
}

// Bytes still queued for the broker are flushed before its connection closes: uv_close would
// cancel them, and they may be what the broker must see (the DISCONNECT 0x00 that makes it
// discard a will a reload revoked, the client's own DISCONNECT, the last acknowledgements).
// Bounded like the client side by the close-flush timer, which ends in closeNow().
void ClientConnection::closeBackendAfterFlush() {
    auto* handle = reinterpret_cast<uv_handle_t*>(&backend_);
    if (!backendOpen_ || uv_is_closing(handle)) return;
    auto* stream = reinterpret_cast<uv_stream_t*>(&backend_);
    if (backendConnected_ && queuedBytes(stream) > 0) {
        backendShutdownReq_.data = this;
        if (uv_shutdown(&backendShutdownReq_, stream, onBackendShutdown) == 0) {
            backendShutdownPending_ = true;
            return;
        }
    }
    uv_close(handle, onHandleClosed);
}

void ClientConnection::onBackendShutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    self->backendShutdownPending_ = false;
    if (status == UV_ECANCELED) return;  // closeNow() closed the handle: its callback follows
    auto* handle = reinterpret_cast<uv_handle_t*>(&self->backend_);
    if (self->shutdownPending_) {
        uv_close(handle, onHandleClosed);  // the client side is still flushing
        return;
    }
    self->closeNow();
}

void ClientConnection::onClientShutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    self->shutdownPending_ = false;
    if (status != UV_ECANCELED && self->backendShutdownPending_) {
        // The broker side is still flushing; it ends the connection (or the close timer does).
        auto* handle = reinterpret_cast<uv_handle_t*>(&self->client_);
        if (!uv_is_closing(handle)) uv_close(handle, onHandleClosed);
        return;
    }
    self->closeNow();
}

void ClientConnection::closeNow() {
    state_ = State::Closing;
    abandonPasswordCheck();
    auto closeHandle = [](uv_handle_t* h) {
        if (h->data && !uv_is_closing(h)) uv_close(h, onHandleClosed);
    };
    closeHandle(reinterpret_cast<uv_handle_t*>(&client_));
    if (backendOpen_) closeHandle(reinterpret_cast<uv_handle_t*>(&backend_));
    closeHandle(reinterpret_cast<uv_handle_t*>(&timer_));
    closeHandle(reinterpret_cast<uv_handle_t*>(&throttleTimer_));
    clientIn_.release();
    backendIn_.release();
}

void ClientConnection::onHandleClosed(uv_handle_t* h) {
    auto* self = fromHandle(h);
    --self->openHandles_;
    self->maybeDelete();
}

void ClientConnection::maybeDelete() {
    if (openHandles_ > 0 || workPending_ || shutdownPending_ || backendShutdownPending_) return;
    if (admitted_) worker_.gateway().release(worker_, listener_.name, ip_);
    if (deniedAny_) worker_.gateway().forgetConnection(id_);
    if (uint64_t n = withheld_.pending())
        audit("authz_denied", "deliver", withheld_.lastTopic(), withheld_.lastRule(), "withheld",
              n);
    if (session_ || connect_) audit("disconnect", "", "", "", "");
    delete this;
}

// ------------------------------------------------------------------ events

void ClientConnection::audit(const char* event, const char* action, std::string_view topic,
                             std::string_view rule, std::string_view reason,
                             std::optional<uint64_t> count) {
    worker_.gateway().audit(event, listener_.name, remote_, connect_ ? connect_->clientId : "",
                            identity_, connect_ ? mqtt::versionName(connect_->version) : "", action,
                            topic, rule, reason, count);
}

void ClientConnection::onAuthzDenied(const char* action, std::string_view topic,
                                     const policy::Decision& decision) {
    worker_.gateway().authzDenied(action);
    if (std::string_view(action) == "deliver") {
        // A withheld delivery is the broker's traffic on a branch the client may not read,
        // not the client probing: summarised, and never fed to topic_scan.
        const std::string rule = decision.describe();
        if (auto n = withheld_.record(uv_now(worker_.loop()), topic, rule))
            audit("authz_denied", action, topic, rule, "withheld", *n);
        return;
    }
    audit("authz_denied", action, topic, decision.describe(), "");
    onDeniedTopic(topic);
}

void ClientConnection::onDeniedTopic(std::string_view topic) {
    deniedAny_ = true;
    Gateway& gw = worker_.gateway();
    if (auto a = gw.deniedTopic(id_, topic))
        gw.raiseAnomaly(*a, listener_.name, remote_, connect_ ? connect_->clientId : "", identity_);
}

void ClientConnection::onProtocolError(uint8_t reason, const char* detail) {
    worker_.gateway().protocolError(mqtt::reasonName(reason));
    audit("protocol_error", "", "", "", detail);
}

void ClientConnection::closeBackendMalformed(const char* detail) {
    onBackendMalformed(detail);
    if (!connackPending_) {
        closeWithReason(rc::UnspecifiedError);
        return;
    }
    // The client has no CONNACK yet: it gets one (v5 0x80, v3 0x03 server unavailable).
    const mqtt::ProtocolVersion v = connect_->version;
    auto connack = mqtt::encodeConnack(
        v, false, v5() ? rc::UnspecifiedError : mqtt::v3ConnackCodeFor(rc::UnspecifiedError), {});
    sendToClient(connack.data(), connack.size());
    closeAfterFlush();
}

void ClientConnection::onBackendMalformed(const char* detail) {
    MOAT_LOG_WARN("broker sent %s a packet it cannot inspect (%s); closing", remote_.c_str(),
                  detail);
    worker_.gateway().protocolError("backend_malformed");
    audit("protocol_error", "", "", "", std::string("broker: ") + detail);
}

void ClientConnection::onSubscriptionLimit(std::string_view filter) {
    worker_.gateway().rateLimited("max_subscriptions");
    audit("rate_limited", "subscribe", filter, "", "max_subscriptions");
}

void ClientConnection::onIntegrityDenied(std::string_view topic, std::string_view rule,
                                         const char* reason) {
    worker_.gateway().authzDenied("integrity");
    audit("authz_denied", "integrity", topic, rule, reason);
}

std::shared_ptr<integrity::Checker> ClientConnection::makeIntegrityChecker(
    const Snapshot& snapshot) {
    if (!snapshot.integrity) return nullptr;
    std::vector<std::string> problems;
    auto checker = snapshot.integrity->checkerFor(identity_, connect_->clientId, problems);
    // Not fatal: the client may never publish under these rules; if it does, each publish
    // is refused with reason "no key".
    for (const auto& p : problems)
        MOAT_LOG_WARN("integrity key for identity %s unusable: %s",
                      metrics::quoteForLog(identity_).c_str(), p.c_str());
    return checker;
}

long ClientConnection::certificateError(const Snapshot& snapshot) const {
    if (!tls_ || !tls_->peerCertificate()) return X509_V_OK;
    auto it = snapshot.tls.find(listener_.name);
    if (it == snapshot.tls.end()) return X509_V_OK;
    return it->second->verifyClientCertificate(tls_->peerCertificate(), tls_->peerChain());
}

inspect::ConnStage ClientConnection::stage() const {
    using inspect::ConnStage;
    switch (state_) {
        case State::ProxyHeader:
        case State::TlsHandshake:
        case State::Closing:
            return ConnStage::BeforeCertificate;
        case State::AwaitConnect:
            return ConnStage::AwaitConnect;
        case State::Authenticating:
            return ConnStage::Authenticating;
        case State::ConnectingBackend:
            return ConnStage::ConnectingBackend;
        case State::Established:
            return ConnStage::Established;
    }
    return ConnStage::BeforeCertificate;
}

void ClientConnection::endForReload(inspect::ReloadOutcome outcome, uint8_t v5Reason,
                                    const std::string& why) {
    using inspect::EndBy;
    switch (inspect::endBy(stage())) {
        case EndBy::Nothing:
            return;
        case EndBy::Close:
            audit("disconnect", "", "", "", why);
            closeAfterFlush();
            return;
        case EndBy::ConnackRefusal:
            // CONNACK has no 0x98; a revoked certificate is "not authorized".
            refuseConnect(
                outcome == inspect::ReloadOutcome::Banned ? rc::Banned : rc::NotAuthorized, why);
            return;
        case EndBy::Disconnect:
            audit("disconnect", "", "", "", why);
            // The same certificate / identity is disconnected at the other replicas (cluster).
            if (outcome == inspect::ReloadOutcome::CertificateInvalid)
                worker_.gateway().shareKick(identity_, certFingerprint(),
                                            cluster::KickReason::Revoked);
            else if (outcome == inspect::ReloadOutcome::NoRights)
                worker_.gateway().shareKick(identity_, "", cluster::KickReason::NoRights);
            closeWithReason(v5Reason);
            return;
    }
}

void ClientConnection::applySnapshot(const Snapshot& snapshot) {
    // Connections keep their TLS session; everything else follows the new snapshot: limits,
    // timeouts, CRL and policy, in every state (ReloadCheck.h). A password check already
    // running keeps its own reference to the password file it started with.
    snapshot_ = worker_.snapshot();
    const inspect::ConnStage st = stage();
    if (st == inspect::ConnStage::BeforeCertificate) return;  // CONNECT re-verifies

    inspect::ReloadFacts facts;
    const long certErr = certificateError(snapshot);
    facts.certificateInvalid = certErr != X509_V_OK;
    std::shared_ptr<const policy::ClientRights> rights;
    policy::Decision willDecision;
    bool willForgedStamp = false;
    if (inspect::hasSessionRights(st) && session_) {
        facts.identityBanned = !identity_.empty() && worker_.gateway().isIdentityBanned(identity_);
        rights = snapshot.policy->rightsFor(identity_, connect_->clientId);
        facts.hasRights = rights->hasAnyRights();
        if (connect_->willFlag) {
            willDecision = rights->checkPublish(connect_->willTopic);
            facts.willAllowed = willDecision.allowed;
            // Stamping turned on: a will the broker holds with a client-supplied moat-identity
            // would reach subscribers that now trust the property.
            if (willForgedIdentity_ && snapshot.config->integrity.stampIdentity) {
                facts.willAllowed = false;
                willDecision.allowed = false;
                willForgedStamp = true;
            }
        }
    }
    const inspect::ReloadOutcome outcome = inspect::judgeReload(st, facts);
    switch (outcome) {
        case inspect::ReloadOutcome::Keep:
            break;
        case inspect::ReloadOutcome::CertificateInvalid:
            endForReload(outcome, rc::AdministrativeAction,
                         std::string("certificate no longer valid after reload: ") +
                             X509_verify_cert_error_string(certErr));
            return;
        case inspect::ReloadOutcome::Banned:
            endForReload(outcome, rc::Banned, "banned");
            return;
        case inspect::ReloadOutcome::NoRights:
            endForReload(outcome, rc::AdministrativeAction, inspect::reloadOutcomeName(outcome));
            return;
        case inspect::ReloadOutcome::WillDenied:
            // The broker publishes a will when the connection drops; a normal DISCONNECT
            // (0x00) makes it discard the will instead.
            worker_.gateway().authzDenied("will");
            audit("authz_denied", "will", connect_->willTopic,
                  willForgedStamp ? "stamp_identity" : willDecision.describe(),
                  willForgedStamp ? "will carries a client-supplied moat-identity and "
                                    "stamp_identity is now on"
                                  : "will topic not allowed after reload");
            if (backendConnected_) {
                auto bye = mqtt::encodeDisconnect(connect_->version, rc::Success, {});
                sendToBackend(bye.data(), bye.size());
            }
            endForReload(outcome, rc::NotAuthorized, inspect::reloadOutcomeName(outcome));
            return;
    }
    if (!rights) return;  // no session yet: finishAuth takes rights from the snapshot then current

    publishBucket_.reconfigure(config().limits.publishRate.perSecond);
    bytesBucket_.reconfigure(config().limits.publishBytesRate.perSecond);
    controlBucket_.reconfigure(config().limits.controlPacketRate.perSecond);

    // Keys and stamp_identity follow the reload (the new snapshot's key cache starts empty).
    session_->replaceIntegrity(makeIntegrityChecker(snapshot));
    session_->setStampIdentity(snapshot.config->integrity.stampIdentity
                                   ? std::optional<std::string>(identity_)
                                   : std::nullopt);
    // Subscriptions the new policy no longer allows are removed at the broker.
    session_->setCheckDeliveries(config().policy.checkDeliveries);
    std::vector<std::string> revoked = session_->replaceRights(std::move(rights));
    if (revoked.empty()) return;
    for (const auto& f : revoked)
        audit("authz_denied", "subscribe", f, "reload", "subscription revoked by reload");
    worker_.gateway().authzDenied("subscribe");
    auto unsub = session_->makeUnsubscribe(revoked);
    if (unsub.empty()) {
        // No free packet id to unsubscribe with: end the session rather than leave the
        // revoked subscriptions at the broker.
        audit("disconnect", "", "", "", "revoked subscriptions could not be unsubscribed");
        closeWithReason(rc::AdministrativeAction);
        return;
    }
    sendToBackend(unsub.data(), unsub.size());
}

}  // namespace moat::net
