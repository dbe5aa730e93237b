#include "gateway/websocket/Frames.h"

#include <wslay/wslay.h>

#include <algorithm>
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

namespace {

// XORs n bytes of `src` with the masking key starting at key offset `pos` into `dst` (may be
// the same); 8 bytes at a time.
void unmask(uint8_t* dst, const uint8_t* src, size_t n, const uint8_t key[4], uint8_t pos) {
    uint8_t k8[8];
    for (int i = 0; i < 8; ++i) k8[i] = key[(pos + i) & 3];
    uint64_t kw;
    std::memcpy(&kw, k8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, src + i, 8);
        w ^= kw;
        std::memcpy(dst + i, &w, 8);
    }
    for (; i < n; ++i) dst[i] = src[i] ^ k8[i & 7];
}

}  // namespace

Deframer::Status Deframer::fail(uint16_t code, const char* why, std::vector<uint8_t>& reply) {
    status_ = Status::Failed;
    closeCode_ = code;
    error_ = why;
    appendClose(reply, code);
    return status_;
}

Deframer::Status Deframer::feed(const uint8_t* data, size_t len, std::vector<uint8_t>& mqtt,
                                std::vector<uint8_t>& reply) {
    size_t off = 0;
    while (status_ == Status::Open && off < len) {
        if (!inPayload_) {
            const size_t take = std::min<size_t>(hdrNeed_ - hdrLen_, len - off);
            std::memcpy(hdr_ + hdrLen_, data + off, take);
            hdrLen_ += static_cast<uint8_t>(take);
            off += take;
            if (hdrLen_ < hdrNeed_) continue;
            if (!startFrame(reply)) break;
            continue;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, len - off));
        if (isControl(opcode_)) {
            unmask(control_ + controlLen_, data + off, n, key_, keyPos_);
            controlLen_ += static_cast<uint8_t>(n);
        } else {
            const size_t at = mqtt.size();
            mqtt.resize(at + n);
            unmask(mqtt.data() + at, data + off, n, key_, keyPos_);
        }
        keyPos_ = static_cast<uint8_t>((keyPos_ + n) & 3);
        left_ -= n;
        off += n;
        if (left_ == 0) endFrame(reply);
    }
    return status_;
}

bool Deframer::startFrame(std::vector<uint8_t>& reply) {
    auto bad = [&](uint16_t code, const char* why) {
        fail(code, why, reply);
        return false;
    };
    if (hdrNeed_ == 2) {
        // The first two bytes: everything but the lengths and the key can be judged now.
        const uint8_t b0 = hdr_[0], b1 = hdr_[1];
        opcode_ = b0 & 0x0f;
        fin_ = (b0 & 0x80) != 0;
        const uint8_t len7 = b1 & 0x7f;
        if ((b1 & 0x80) == 0) return bad(close_code::kProtocolError, "unmasked frame");
        if (b0 & 0x70) return bad(close_code::kProtocolError, "reserved bits");
        switch (opcode_) {
            case kBinary:
                if (messageOpen_)
                    return bad(close_code::kProtocolError, "new message inside a message");
                break;
            case kContinuation:
                if (!messageOpen_)
                    return bad(close_code::kProtocolError, "continuation without a message");
                break;
            case kText:
                return bad(close_code::kUnsupportedData, "text frame");
            case kClose:
            case kPing:
            case kPong:
                if (!fin_ || len7 > 125)
                    return bad(close_code::kProtocolError, "long or fragmented control frame");
                break;
            default:
                return bad(close_code::kProtocolError, "unknown opcode");
        }
        hdrNeed_ = static_cast<uint8_t>(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
        if (hdrLen_ < hdrNeed_) return true;  // the rest of the header follows
    }
    const uint8_t len7 = hdr_[1] & 0x7f;
    uint64_t len = len7;
    size_t p = 2;
    if (len7 == 126) {
        len = static_cast<uint64_t>(hdr_[2]) << 8 | hdr_[3];
        p = 4;
        if (len < 126) return bad(close_code::kProtocolError, "non-minimal length");
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | hdr_[2 + i];
        p = 10;
        if (len < 65536 || (len >> 63) != 0)
            return bad(close_code::kProtocolError, "non-minimal length");
    }
    std::memcpy(key_, hdr_ + p, 4);
    keyPos_ = 0;
    left_ = len;
    controlLen_ = 0;
    hdrLen_ = 0;
    hdrNeed_ = 2;
    inPayload_ = true;
    if (!isControl(opcode_)) messageOpen_ = !fin_;
    if (left_ == 0) endFrame(reply);
    return status_ == Status::Open;
}

void Deframer::endFrame(std::vector<uint8_t>& reply) {
    inPayload_ = false;
    if (isControl(opcode_)) onControl(reply);
}

void Deframer::onControl(std::vector<uint8_t>& reply) {
    if (opcode_ == kPing) {
        sender().frame(reply, kPong, control_, controlLen_);
        return;
    }
    if (opcode_ == kPong) return;
    // Close: a body is empty or a code (2 bytes) and a UTF-8 reason.
    if (controlLen_ == 1) {
        fail(close_code::kProtocolError, "close frame of 1 byte", reply);
        return;
    }
    if (controlLen_ == 0) {
        closeCode_ = 0;
        status_ = Status::Closed;
        appendClose(reply, 0);
        return;
    }
    const uint16_t code = static_cast<uint16_t>(control_[0] << 8 | control_[1]);
    if (!sendableCloseCode(code)) {
        fail(close_code::kProtocolError, "bad close code", reply);
        return;
    }
    if (!validUtf8(control_ + 2, controlLen_ - 2u)) {
        fail(close_code::kProtocolError, "close reason not UTF-8", reply);
        return;
    }
    closeCode_ = code;
    status_ = Status::Closed;
    // The usual answer echoes the code (RFC 6455 §5.5.1).
    appendClose(reply, code);
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
