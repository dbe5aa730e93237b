#pragma once
// WebSocket framing for MQTT (RFC 6455 §5, server side), over libwslay's frame-level API.
//
// Why the frame API and not wslay_event_*: the event API can stream too (no_buffering), but it
// answers protocol errors and close frames with codes of its own and copies every outgoing
// message into its queue. The frame API only cuts frames and unmasks: the rules below stay
// here, in view, and the payload of a data frame goes on to the MQTT splitter chunk by chunk
// as it arrives — a message is never buffered whole, so MQTT packet limits apply per packet.
//
// Rules for client frames: masked (else close 1002), reserved bits 0 (no extension is ever
// negotiated; else 1002), binary messages only (text: 1003), continuation frames only inside
// a fragmented message and no new message inside one (1002), control frames ≤ 125 bytes and
// unfragmented (1002), a close code that may be sent (1002). Ping is answered with pong;
// pong is ignored; close is answered with close and ends the input.

#include <cstddef>
#include <cstdint>
#include <vector>

struct wslay_frame_context;

namespace moat::websocket {

namespace close_code {
constexpr uint16_t kNormal = 1000;
constexpr uint16_t kGoingAway = 1001;  // drain
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kUnsupportedData = 1003;  // a text frame
constexpr uint16_t kPolicyViolation = 1008;
constexpr uint16_t kInternalError = 1011;
}  // namespace close_code

// The close code that goes with the MQTT reason a connection ends for (a v5 DISCONNECT's
// reason, or the reason a v3 connection is closed for): 0 → 1000, server shutting down →
// 1001, the server's own failures (unspecified, implementation specific, unavailable, busy)
// → 1011, any other refusal or violation → 1008.
uint16_t closeCodeFor(uint8_t mqttReason);

class Deframer {
  public:
    enum class Status : uint8_t {
        Open,    // go on reading
        Closed,  // the client closed; the answer is in `reply`, read no more
        Failed,  // a framing rule broken; the close frame is in `reply`, read no more
    };

    Deframer();
    ~Deframer();
    Deframer(const Deframer&) = delete;
    Deframer& operator=(const Deframer&) = delete;

    // Client bytes in. The unmasked payload of binary messages is appended to `mqtt` (in
    // order, frame boundaries gone); frames to send back (pong, close) to `reply`. After
    // Closed or Failed every further byte is ignored.
    Status feed(const uint8_t* data, size_t len, std::vector<uint8_t>& mqtt,
                std::vector<uint8_t>& reply);

    // Failed: the code sent (1002 / 1003). Closed: the client's code (0: none given).
    uint16_t closeCode() const { return closeCode_; }
    const char* error() const { return error_; }
    // Between frames with nothing buffered: no wslay context held (idle connections).
    bool holdsNoBuffer() const { return ctx_ == nullptr; }

  private:
    Status pump(std::vector<uint8_t>& mqtt, std::vector<uint8_t>& reply);
    Status fail(uint16_t code, const char* why, std::vector<uint8_t>& reply);
    Status onControl(std::vector<uint8_t>& reply);

    // wslay's context holds a 4 KiB input buffer: a deframer has one only while bytes are in
    // it or a frame is open, so an idle connection does not carry it (lent from a per-thread
    // pool for each feed). `fed_` counts the bytes given to it, `framed_` the bytes of the
    // frames it finished (header + payload): equal between frames means its buffer is empty.
    wslay_frame_context* ctx_ = nullptr;
    uint64_t fed_ = 0;
    uint64_t framed_ = 0;
    const uint8_t* in_ = nullptr;  // the bytes of the current feed() not yet given to wslay
    size_t inLen_ = 0;
    uint64_t frameSeen_ = 0;    // payload bytes of the current frame delivered so far
    bool frameOpen_ = false;    // inside a frame (its first chunk seen)
    bool messageOpen_ = false;  // a binary message without its final frame yet
    uint8_t opcode_ = 0;        // of the current frame
    uint8_t control_[125];      // a control frame's payload
    uint8_t controlLen_ = 0;
    Status status_ = Status::Open;
    uint16_t closeCode_ = 0;
    const char* error_ = "";

    static long onRecv(uint8_t* buf, size_t len, int flags, void* self);
};

// Server frames (never masked). appendBinary: one FIN binary frame holding `data`;
// appendClose: a close frame with `code` (0: an empty body).
void appendBinary(std::vector<uint8_t>& out, const uint8_t* data, size_t len);
void appendClose(std::vector<uint8_t>& out, uint16_t code);
// The header of a FIN binary frame of `len` payload bytes (2, 4 or 10 bytes, in `out`).
size_t binaryHeader(uint8_t out[10], uint64_t len);

}  // namespace moat::websocket
