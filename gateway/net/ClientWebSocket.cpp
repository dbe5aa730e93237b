// MQTT over WebSocket: the layer between the client transport and the MQTT frame splitter.
// Decides nothing about MQTT: after the upgrade every byte goes to the same splitter and the
// same session rules as on a raw listener.

#include "gateway/net/ClientWebSocket.h"

#include "gateway/mqtt/Types.h"
#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/Worker.h"

namespace moat::net {

namespace {

// Per worker thread: unmasked MQTT of one read, control frames to send back, one outgoing
// frame. Reused, so a steady connection allocates nothing per message.
std::vector<uint8_t>& scratch(int which) {
    thread_local std::vector<uint8_t> buffers[3];
    return buffers[which];
}

}  // namespace

void ClientConnection::onClientStream(const uint8_t* data, size_t len) {
    if (!ws_) {
        onClientPlaintext(data, len);
        return;
    }
    if (!ws_->upgraded) {
        size_t used = 0;
        if (!wsUpgrade(data, len, used) || !ws_->upgraded) return;
        data += used;
        len -= used;
        if (len == 0) return;
    }
    std::vector<uint8_t>& mqtt = scratch(0);
    std::vector<uint8_t>& reply = scratch(1);
    mqtt.clear();
    reply.clear();
    const websocket::Deframer::Status st = ws_->deframer.feed(data, len, mqtt, reply);
    // What came before a close or a violation is still MQTT the client sent.
    if (!mqtt.empty()) onClientPlaintext(mqtt.data(), mqtt.size());
    if (state_ == State::Closing) return;
    if (!reply.empty()) transportOutRaw(reply.data(), reply.size(), true);
    if (st == websocket::Deframer::Status::Open) return;
    ws_->closeSent = true;  // the answer (close frame) is in `reply`
    if (st == websocket::Deframer::Status::Failed) {
        worker_.gateway().protocolError("websocket_frame");
        audit("protocol_error", "", "", "",
              std::string("websocket: ") + ws_->deframer.error() + " (close " +
                  std::to_string(ws_->deframer.closeCode()) + ")");
        closeAfterFlush();
        return;
    }
    closeWhenBufferedHandled();  // a clean close: what the client sent before it still counts
}

bool ClientConnection::wsUpgrade(const uint8_t* data, size_t len, size_t& used) {
    // Copied only when the head arrives in pieces.
    const uint8_t* buf = data;
    size_t n = len;
    const size_t before = ws_->head.size();
    if (before > 0) {
        ws_->head.append(reinterpret_cast<const char*>(data), len);
        buf = reinterpret_cast<const uint8_t*>(ws_->head.data());
        n = ws_->head.size();
    }
    const Snapshot::ListenerWebSocket& l = *ws_->listener;
    websocket::UpgradeOptions options = l.options;
    options.forwardedFor = ws_->admitAfterHead;  // only a trusted balancer speaks for others
    websocket::UpgradeResult r = websocket::parseUpgrade(buf, n, options);
    if (r.status == websocket::UpgradeStatus::NeedMore) {
        if (before == 0) ws_->head.assign(reinterpret_cast<const char*>(data), len);
        used = len;
        return true;
    }
    if (r.status == websocket::UpgradeStatus::Refused) {
        worker_.gateway().protocolError("websocket_handshake");
        audit("protocol_error", "", "", "",
              "websocket handshake refused: " + std::string(r.reason) + " (HTTP " +
                  std::to_string(r.httpStatus) + ")");
        transportOutRaw(reinterpret_cast<const uint8_t*>(r.response.data()), r.response.size(),
                        true);
        closeAfterFlush();
        return false;
    }
    if (ws_->admitAfterHead) {
        if (r.forwarded.valid()) {
            r.forwarded.port = peer_.port;
            peer_ = r.forwarded;
            remote_ = peer_.text();
            ip_ = peer_.ipText();
        }
        if (!worker_.gateway().admit(worker_, listener_.name, ip_)) {
            // Over the address's limits (counted and logged by admit): the balancer in front
            // gets an HTTP answer it can log and pass on, not a bare reset.
            const websocket::UpgradeResult no = websocket::refusal(429, "admission refused");
            transportOutRaw(reinterpret_cast<const uint8_t*>(no.response.data()),
                            no.response.size(), true);
            closeAfterFlush();
            return false;
        }
        admitted_ = true;
    }
    transportOutRaw(reinterpret_cast<const uint8_t*>(r.response.data()), r.response.size(), true);
    ws_->upgraded = true;
    ws_->listener.reset();
    used = r.headLength - before;
    std::string().swap(ws_->head);
    return true;
}

void ClientConnection::wsOut(const uint8_t* data, size_t len, bool flush) {
    if (len == 0) return;
    if (!ws_->upgraded || ws_->closeSent) return;  // no MQTT before the upgrade or after close
    std::vector<uint8_t>& frame = scratch(2);
    frame.clear();
    websocket::appendBinary(frame, data, len);
    transportOutRaw(frame.data(), frame.size(), flush);
}

void ClientConnection::wsNoteReason(uint8_t v5Reason) {
    if (!ws_ || ws_->reasonNoted) return;
    ws_->reasonNoted = true;
    ws_->reason = v5Reason;
}

void ClientConnection::wsNoteAction(const inspect::Action& a) {
    if (!ws_) return;
    const std::vector<uint8_t>& out = a.toClient;
    if (out.size() >= 4 && out[0] == 0x20) {
        // A refused CONNECT: the v5 reason, or the v3 return code (3 = server unavailable).
        wsNoteReason(out[3] == 3 ? mqtt::reason::ServerUnavailable : out[3]);
    } else if (out.size() >= 2 && out[0] == 0xE0) {
        wsNoteReason(out.size() > 2 ? out[2] : 0);
    } else if (a.kind == inspect::Action::Kind::Close) {
        wsNoteReason(mqtt::reason::ProtocolError);  // a v3 violation: nothing to tell it
    }
}

void ClientConnection::wsSendClose() {
    if (!ws_->upgraded || ws_->closeSent) return;
    ws_->closeSent = true;
    std::vector<uint8_t> frame;
    websocket::appendClose(frame, websocket::closeCodeFor(ws_->reasonNoted ? ws_->reason : 0));
    transportOutRaw(frame.data(), frame.size(), true);
}

}  // namespace moat::net
