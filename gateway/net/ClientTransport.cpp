// ClientConnection's client transport: the PROXY header, then TLS (or plain TCP) between the
// socket and the MQTT frame splitter. transportIn / transportOut are the seam a WebSocket layer
// wraps: it sits between TLS plaintext and onClientPlaintext, and before tls_->write.

#include <openssl/x509.h>

#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/StreamWriter.h"
#include "gateway/net/Worker.h"
#include "gateway/tls/CertIdentity.h"

namespace moat::net {

namespace {

ClientConnection* fromHandle(const uv_handle_t* h) {
    return static_cast<ClientConnection*>(h->data);
}

}  // namespace

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
    if (tailLen > 0) transportIn(tail, tailLen);
}

// ------------------------------------------------------------------ client transport

void ClientConnection::onClientAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    *buf = fromHandle(h)->worker_.readBuffer();
}

void ClientConnection::onClientRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = fromHandle(reinterpret_cast<uv_handle_t*>(s));
    if (self->state_ == State::Closing) {
        self->onClosingClientRead(n);
        return;
    }
    if (n > 0) {
        // Not keepalive activity: only a complete packet is (ConnectionPipeline).
        self->transportIn(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n));
        return;
    }
    if (n == 0) return;
    // EOF or error: whatever the client sent is already forwarded; the broker sees the
    // connection go away (and publishes the will, as it would for a dropped device).
    if (self->state_ == State::TlsHandshake)
        self->onHandshakeFailed("closed during the TLS handshake");
    self->closeNow();
}

void ClientConnection::transportIn(const uint8_t* data, size_t len) {
    if (state_ == State::Closing) return;
    if (state_ == State::ProxyHeader) {
        onProxyHeaderBytes(data, len);
        return;
    }
    if (!tls_) {
        onClientStream(data, len);
        return;
    }
    tls_->feed(data, len);
    bool wasHandshaking = !tls_->handshakeComplete();
    std::vector<uint8_t>& plain = worker_.plaintextScratch();
    plain.clear();
    tls::TlsSession::Status st = tls_->read(plain);
    if (wasHandshaking && tls_->handshakeComplete()) {
        worker_.gateway().tlsHandshakeOk(listener_.name);
        state_ = State::Open;
    }
    if (st == tls::TlsSession::Status::Error) {
        if (wasHandshaking) onHandshakeFailed(tls_->lastError());
        flushClient();  // send the alert
        closeAfterFlush();
        return;
    }
    if (!plain.empty()) onClientStream(plain.data(), plain.size());
    if (state_ == State::Closing) return;
    flushClient();
    // The handshake grew the session's output buffer to a few KiB (certificates); steady
    // traffic needs far less, and an idle device should not carry it.
    if (wasHandshaking && tls_->handshakeComplete()) tls_->releaseIdleBuffers();
    if (st == tls::TlsSession::Status::Closed) closeWhenBufferedHandled();
}

void ClientConnection::transportOut(const uint8_t* data, size_t len, bool flush) {
    if (ws_) {
        wsOut(data, len, flush);
        return;
    }
    transportOutRaw(data, len, flush);
}

void ClientConnection::transportOutRaw(const uint8_t* data, size_t len, bool flush) {
    if (len == 0) return;
    if (tls_) {
        // Encrypted now, written at the next flushClient (one write for a run of records).
        tls_->write(data, len);
        if (flush) flushClient();
        return;
    }
    if (writeToStream(reinterpret_cast<uv_stream_t*>(&client_), data, len, onClientWritten) < 0) {
        closeNow();
        return;
    }
    checkClientQueue();
}

void ClientConnection::flushClient() {
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

std::optional<std::string> ClientConnection::certificateProblem(const Snapshot& snapshot) const {
    if (!tls_ || !tls_->peerCertificate()) return std::nullopt;
    auto it = snapshot.tls.find(listener_.name);
    if (it == snapshot.tls.end()) return std::nullopt;
    const long err =
        it->second->verifyClientCertificate(tls_->peerCertificate(), tls_->peerChain());
    if (err == X509_V_OK) return std::nullopt;
    return std::string(X509_verify_cert_error_string(err));
}

inspect::ConnectContext ClientConnection::connectContext() const {
    inspect::ConnectContext ctx;
    if (tls_ && tls_->peerCertificate()) {
        ctx.cert.presented = true;
        tls::CertInfo info = tls::inspectCertificate(tls_->peerCertificate());
        ctx.cert.identity = tls::identityFromCert(info, config().auth.identityFrom);
    }
    // The handshake verified the certificate against its snapshot's CRL; without a reload
    // since, that verdict is the current one.
    if (snapshot_->generation != handshakeGeneration_)
        ctx.certificateProblem = certificateProblem(*snapshot_);
    return ctx;
}

}  // namespace moat::net
