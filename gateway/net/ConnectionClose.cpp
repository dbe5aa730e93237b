// ClientConnection's end: flush what is queued on both sides (bounded by the close-flush
// timer), close the handles, and delete the object when the last one has closed.
//
// Lingering close (nginx's lingering_close, HAProxy's "linger"): when the gateway closes on a
// client that is still sending (an oversized packet refused by its header, pipelined packets
// behind a refused one), closing the socket with those bytes unread makes the kernel answer
// with a reset, and a reset can overtake the CONNACK / DISCONNECT / close frame that says
// why. So the client is read and its bytes discarded while the last answer flushes, and until
// it hangs up itself, at most until the close-flush timer.

#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/StreamWriter.h"
#include "gateway/net/Worker.h"

namespace moat::net {

namespace {

// How long a closing connection may take to flush its last bytes (CONNACK, DISCONNECT).
constexpr uint64_t kCloseFlushMs = 2000;
// How much longer the broker side may take when the broker is what holds the flush up (it
// stalls, or reads slowly): the bytes left are the ones it must see — a DISCONNECT that makes
// it discard a will — and closing before it read them makes it publish that will.
constexpr uint64_t kBrokerFlushMs = 30000;

ClientConnection* fromHandle(const uv_handle_t* h) {
    return static_cast<ClientConnection*>(h->data);
}

}  // namespace

void ClientConnection::closeAfterFlush() {
    if (state_ == State::Closing) return;
    if (ws_) wsSendClose();
    flushClient();
    state_ = State::Closing;
    // Keep reading, discarding (transportIn ignores a closing connection): see lingering.
    if (!clientReading_) {
        clientReading_ = true;
        uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), onClientAlloc, onClientRead);
    }
    closeBackendAfterFlush();
    armTimer(kCloseFlushMs);
    shutdownReq_.data = this;
    if (uv_shutdown(&shutdownReq_, reinterpret_cast<uv_stream_t*>(&client_), onClientShutdown) != 0)
        closeNow();
    else
        shutdownPending_ = true;
}

// The client ended cleanly (TLS close_notify, WebSocket close frame) in the same read as
// packets we have not handled yet because its reads are paused (throttle, back-pressure): those
// packets are still what it sent, so they are handled when the pause ends and the connection
// closes after them. Nothing more is read meanwhile.
void ClientConnection::closeWhenBufferedHandled() {
    if (clientPause_ == 0 || clientIn_.empty()) {
        closeAfterFlush();
        return;
    }
    peerFinished_ = true;
    if (clientReading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
    clientReading_ = false;
}

// Bytes still queued for the broker are flushed before its connection closes: uv_close would
// cancel them, and they may be what the broker must see (the DISCONNECT 0x00 that makes it
// discard a will a reload revoked, the client's own DISCONNECT, the last acknowledgements).
// Once they are in the kernel the side is shut for writing and the gateway waits for the
// broker to hang up — proof it read them: closing earlier with its bytes unread by us would
// make our kernel reset the connection and drop them. Bounded by the close-flush timer and,
// when the broker is what holds it up, kBrokerFlushMs more (onCloseTimer).
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
    if (status == 0) {
        self->awaitingBrokerEof_ = true;
        // Read again even if we think we are reading: libuv stops by itself after an EOF the
        // broker may already have sent, and reading on repeats it.
        auto* stream = reinterpret_cast<uv_stream_t*>(&self->backend_);
        uv_read_stop(stream);
        self->backendReading_ = true;
        uv_read_start(stream, onBackendAlloc, onBackendRead);
        return;  // onClosingBackendRead sees the hang-up
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&self->backend_), onHandleClosed);
    self->finishClose();
}

// A closing connection's broker read: what the broker still says is discarded; its hang-up,
// after our shutdown, ends the broker side.
void ClientConnection::onClosingBackendRead(ssize_t n) {
    if (n >= 0 || !awaitingBrokerEof_) return;
    awaitingBrokerEof_ = false;
    auto* handle = reinterpret_cast<uv_handle_t*>(&backend_);
    if (!uv_is_closing(handle)) uv_close(handle, onHandleClosed);
    finishClose();
}

// The close-flush timer: whatever is left is abandoned, except a broker side that is still
// handing the broker our last bytes — the client side closes and the broker gets longer.
void ClientConnection::onCloseTimer() {
    if (!brokerOnly_ && (backendShutdownPending_ || awaitingBrokerEof_)) {
        brokerOnly_ = true;
        lingering_ = false;
        auto* handle = reinterpret_cast<uv_handle_t*>(&client_);
        if (!uv_is_closing(handle)) uv_close(handle, onHandleClosed);  // cancels its shutdown
        armTimer(kBrokerFlushMs);
        return;
    }
    closeNow();
}

void ClientConnection::onClientShutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<ClientConnection*>(req->data);
    self->shutdownPending_ = false;
    if (status == UV_ECANCELED && self->brokerOnly_) return;  // onCloseTimer closed the client
    if (status == UV_ECANCELED || status < 0) {
        self->closeNow();  // closed already, or the client is gone: nothing left to wait for
        return;
    }
    self->finishClose();
}

// A closing client's read: its bytes are discarded; its hang-up ends the lingering.
void ClientConnection::onClosingClientRead(ssize_t n) {
    if (n > 0) {
        lingering_ = true;  // it is still sending: wait for its hang-up, not just our flush
        return;
    }
    if (n == 0) return;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
    clientReading_ = false;
    lingering_ = false;
    finishClose();
}

// Called whenever one part of a graceful close is done; closes what no longer has to wait.
void ClientConnection::finishClose() {
    if (shutdownPending_) return;  // our last bytes to the client are still on their way
    if (lingering_ && clientReading_) return;  // its hang-up or the close timer ends it
    if (backendShutdownPending_ || awaitingBrokerEof_) {
        // The broker side is still flushing; it ends the connection (or the close timer does).
        auto* handle = reinterpret_cast<uv_handle_t*>(&client_);
        if (!uv_is_closing(handle)) uv_close(handle, onHandleClosed);
        return;
    }
    closeNow();
}

void ClientConnection::closeNow() {
    state_ = State::Closing;
    abandonPasswordCheck();
    abandonTokenCheck();
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
    pipeline_->onClosed();
    delete this;
}

}  // namespace moat::net
