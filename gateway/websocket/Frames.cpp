#include "gateway/websocket/Frames.h"

#include <wslay/wslay.h>

#include <cstring>
#include <new>

namespace moat::websocket {
namespace {

constexpr uint8_t kContinuation = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9,
                  kPong = 0xa;

bool isControl(uint8_t opcode) {
    return (opcode & 0x8) != 0;
}

// RFC 6455 §7.4: the codes an endpoint may put in a close frame it sends.
bool sendableCloseCode(uint16_t c) {
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

// UTF-8 as RFC 3629 allows it (a close reason must be valid UTF-8).
bool validUtf8(const uint8_t* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        size_t extra = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + extra >= n) return false;
        for (size_t k = 1; k <= extra; ++k) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static constexpr uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += extra + 1;
    }
    return true;
}

// Outgoing frames go through wslay_frame_send too (it writes the header); one context per
// thread, its send callback appending to the vector of the current call.
struct Sender {
    wslay_frame_context* ctx = nullptr;
    std::vector<uint8_t>* out = nullptr;

    static ssize_t onSend(const uint8_t* data, size_t len, int, void* user) {
        auto* self = static_cast<Sender*>(user);
        self->out->insert(self->out->end(), data, data + len);
        return static_cast<ssize_t>(len);
    }
    static ssize_t noRecv(uint8_t*, size_t, int, void*) { return -1; }

    Sender() {
        wslay_frame_callbacks cb{&Sender::onSend, &Sender::noRecv, nullptr};
        if (wslay_frame_context_init(&ctx, &cb, this) != 0) throw std::bad_alloc();
    }
    ~Sender() { wslay_frame_context_free(ctx); }

    void frame(std::vector<uint8_t>& to, uint8_t opcode, const uint8_t* data, size_t len) {
        out = &to;
        wslay_frame_iocb iocb{};
        iocb.fin = 1;
        iocb.opcode = opcode;
        iocb.mask = 0;
        iocb.payload_length = len;
        iocb.data = data;
        iocb.data_length = len;
        // The callback always takes everything: one call sends header and payload.
        wslay_frame_send(ctx, &iocb);
        out = nullptr;
    }
};

Sender& sender() {
    thread_local Sender s;
    return s;
}

}  // namespace

uint16_t closeCodeFor(uint8_t reason) {
    switch (reason) {
        case 0x00:
            return close_code::kNormal;
        case 0x8b:  // server shutting down
            return close_code::kGoingAway;
        case 0x80:  // unspecified error
        case 0x83:  // implementation specific error
        case 0x88:  // server unavailable
        case 0x89:  // server busy
            return close_code::kInternalError;
        default:
            return close_code::kPolicyViolation;
    }
}

// wslay contexts between frames (nothing buffered, waiting for a header) are all alike, so
// one is lent to a deframer for the span of a feed() and taken back when it ends between
// frames: a steady connection costs no allocation per read and an idle one holds no 4 KiB
// buffer. The context's recv callback finds its deframer through `tFeeding` (user_data is
// fixed when a context is made).
namespace {

thread_local Deframer* tFeeding = nullptr;

struct ContextPool {
    std::vector<wslay_frame_context*> spare;
    ~ContextPool() {
        for (auto* c : spare) wslay_frame_context_free(c);
    }
};

ContextPool& pool() {
    thread_local ContextPool p;
    return p;
}

constexpr size_t kSpareContexts = 8;

}  // namespace

Deframer::Deframer() = default;

Deframer::~Deframer() {
    if (ctx_) wslay_frame_context_free(ctx_);  // in mid-frame: not reusable
}

long Deframer::onRecv(uint8_t* buf, size_t len, int, void*) {
    Deframer* self = tFeeding;
    const size_t n = len < self->inLen_ ? len : self->inLen_;
    if (n == 0) return 0;  // wslay: "want read"
    std::memcpy(buf, self->in_, n);
    self->in_ += n;
    self->inLen_ -= n;
    return static_cast<long>(n);
}

Deframer::Status Deframer::fail(uint16_t code, const char* why, std::vector<uint8_t>& reply) {
    status_ = Status::Failed;
    closeCode_ = code;
    error_ = why;
    appendClose(reply, code);
    return status_;
}

Deframer::Status Deframer::feed(const uint8_t* data, size_t len, std::vector<uint8_t>& mqtt,
                                std::vector<uint8_t>& reply) {
    if (status_ != Status::Open) return status_;
    if (ctx_ == nullptr) {
        auto& spare = pool().spare;
        if (!spare.empty()) {
            ctx_ = spare.back();
            spare.pop_back();
        } else {
            wslay_frame_callbacks cb{nullptr, nullptr, nullptr};
            cb.recv_callback = [](uint8_t* buf, size_t n, int flags, void* self) -> ssize_t {
                return static_cast<ssize_t>(onRecv(buf, n, flags, self));
            };
            if (wslay_frame_context_init(&ctx_, &cb, nullptr) != 0) throw std::bad_alloc();
        }
        fed_ = framed_ = 0;
    }
    tFeeding = this;
    in_ = data;
    inLen_ = len;
    fed_ += len;
    const Status st = pump(mqtt, reply);
    tFeeding = nullptr;
    // Between frames with nothing buffered: the context goes back to the pool.
    if (ctx_ && !frameOpen_ && fed_ == framed_) {
        auto& spare = pool().spare;
        if (spare.size() < kSpareContexts)
            spare.push_back(ctx_);
        else
            wslay_frame_context_free(ctx_);
        ctx_ = nullptr;
    }
    return st;
}

Deframer::Status Deframer::pump(std::vector<uint8_t>& mqtt, std::vector<uint8_t>& reply) {
    for (;;) {
        wslay_frame_iocb iocb{};
        const ssize_t r = wslay_frame_recv(ctx_, &iocb);
        if (r == WSLAY_ERR_WANT_READ) break;
        if (r < 0) return fail(close_code::kProtocolError, "bad frame header", reply);
        if (!frameOpen_) {
            // The first chunk of a frame (wslay reports a frame once a payload byte, or the
            // end of an empty payload, is there): its header is judged here.
            frameOpen_ = true;
            frameSeen_ = 0;
            opcode_ = iocb.opcode;
            controlLen_ = 0;
            if (!iocb.mask) return fail(close_code::kProtocolError, "unmasked frame", reply);
            if (iocb.rsv != 0) return fail(close_code::kProtocolError, "reserved bits", reply);
            switch (opcode_) {
                case kBinary:
                    if (messageOpen_)
                        return fail(close_code::kProtocolError, "new message inside a message",
                                    reply);
                    messageOpen_ = !iocb.fin;
                    break;
                case kContinuation:
                    if (!messageOpen_)
                        return fail(close_code::kProtocolError, "continuation without a message",
                                    reply);
                    messageOpen_ = !iocb.fin;
                    break;
                case kText:
                    return fail(close_code::kUnsupportedData, "text frame", reply);
                case kClose:
                case kPing:
                case kPong:
                    break;  // wslay refused long or fragmented control frames already
                default:
                    return fail(close_code::kProtocolError, "unknown opcode", reply);
            }
        }
        if (isControl(opcode_)) {
            std::memcpy(control_ + controlLen_, iocb.data, iocb.data_length);
            controlLen_ += static_cast<uint8_t>(iocb.data_length);
        } else if (iocb.data_length > 0) {
            mqtt.insert(mqtt.end(), iocb.data, iocb.data + iocb.data_length);
        }
        frameSeen_ += iocb.data_length;
        if (frameSeen_ == iocb.payload_length) {
            frameOpen_ = false;
            // wslay refuses non-minimal lengths: the header size follows from the length.
            const uint64_t n = iocb.payload_length;
            framed_ += 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4 + n;
            if (isControl(opcode_) && onControl(reply) != Status::Open) return status_;
        }
    }
    return status_;
}

Deframer::Status Deframer::onControl(std::vector<uint8_t>& reply) {
    if (opcode_ == kPing) {
        sender().frame(reply, kPong, control_, controlLen_);
        return status_;
    }
    if (opcode_ == kPong) return status_;
    // Close: a body is empty or a code (2 bytes) and a UTF-8 reason.
    if (controlLen_ == 1) return fail(close_code::kProtocolError, "close frame of 1 byte", reply);
    if (controlLen_ == 0) {
        closeCode_ = 0;
        status_ = Status::Closed;
        appendClose(reply, 0);
        return status_;
    }
    const uint16_t code = static_cast<uint16_t>(control_[0] << 8 | control_[1]);
    if (!sendableCloseCode(code)) return fail(close_code::kProtocolError, "bad close code", reply);
    if (!validUtf8(control_ + 2, controlLen_ - 2u))
        return fail(close_code::kProtocolError, "close reason not UTF-8", reply);
    closeCode_ = code;
    status_ = Status::Closed;
    // The usual answer echoes the code (RFC 6455 §5.5.1).
    appendClose(reply, code);
    return status_;
}

void appendBinary(std::vector<uint8_t>& out, const uint8_t* data, size_t len) {
    sender().frame(out, kBinary, data, len);
}

void appendClose(std::vector<uint8_t>& out, uint16_t code) {
    uint8_t body[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    sender().frame(out, kClose, body, code == 0 ? 0 : 2);
}

size_t binaryHeader(uint8_t out[10], uint64_t len) {
    out[0] = 0x80 | kBinary;
    if (len < 126) {
        out[1] = static_cast<uint8_t>(len);
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = static_cast<uint8_t>(len >> 8);
        out[3] = static_cast<uint8_t>(len);
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(len >> (56 - 8 * i));
    return 10;
}

}  // namespace moat::websocket
