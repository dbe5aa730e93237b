#pragma once
// WebSocket framing for MQTT (RFC 6455 §5, server side). Sans-I/O: bytes in, bytes out.
//
// Client frames are cut and unmasked here, streaming: the payload of a data frame goes on to
// the MQTT splitter as it arrives — a message is never buffered whole, so MQTT packet limits
// apply per packet. libwslay was the first choice for this side too; its frame API streams
// (wslay_event_* buffers messages unless told not to, and answers errors with codes of its
// own), but it copies every byte through a 4 KiB buffer and unmasks one byte at a time
// (measured: 9.5 µs per 4 KiB frame, about Moat's whole CPU budget per message), so the
// receive side is this small parser with 8-byte-wise unmasking (0.3 µs). Server frames are
// written with wslay_frame_send.
//
// Rules for client frames: masked (else close 1002), reserved bits 0 (no extension is ever
// negotiated; else 1002), binary messages only (text: 1003), continuation frames only inside
// a fragmented message and no new message inside one (1002), control frames ≤ 125 bytes and
// unfragmented (1002), lengths in their shortest encoding with the top bit clear (1002), a
// close code that may be sent and a UTF-8 reason (1002). Ping is answered with pong; pong is
// ignored; close is answered with close and ends the input. A header is judged as soon as
// its first two bytes are in.

#include <cstddef>
#include <cstdint>
#include <vector>

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

    // Client bytes in. The unmasked payload of binary messages is appended to `mqtt` (in
    // order, frame boundaries gone); frames to send back (pong, close) to `reply`. After
    // Closed or Failed every further byte is ignored.
    Status feed(const uint8_t* data, size_t len, std::vector<uint8_t>& mqtt,
                std::vector<uint8_t>& reply);

    // Failed: the code sent (1002 / 1003). Closed: the client's code (0: none given).
    uint16_t closeCode() const { return closeCode_; }
    const char* error() const { return error_; }

  private:
    Status fail(uint16_t code, const char* why, std::vector<uint8_t>& reply);
    // The header is complete (hdr_): judges it; false when the stream failed.
    bool startFrame(std::vector<uint8_t>& reply);
    void endFrame(std::vector<uint8_t>& reply);
    void onControl(std::vector<uint8_t>& reply);

    uint8_t hdr_[14];      // the current frame's header while it arrives
    uint8_t hdrLen_ = 0;   // bytes of it in hdr_
    uint8_t hdrNeed_ = 2;  // its size, known after the first two bytes
    bool inPayload_ = false;
    uint64_t left_ = 0;    // payload bytes of the current frame still to come
    uint8_t key_[4] = {};  // its masking key
    uint8_t keyPos_ = 0;   // payload offset of the next byte, modulo 4
    uint8_t opcode_ = 0;
    bool fin_ = false;
    bool messageOpen_ = false;  // a binary message without its final frame yet
    uint8_t control_[125];      // a control frame's payload
    uint8_t controlLen_ = 0;
    Status status_ = Status::Open;
    uint16_t closeCode_ = 0;
    const char* error_ = "";
};

// Server frames (never masked). appendBinary: one FIN binary frame holding `data`;
// appendClose: a close frame with `code` (0: an empty body).
void appendBinary(std::vector<uint8_t>& out, const uint8_t* data, size_t len);
void appendClose(std::vector<uint8_t>& out, uint16_t code);
// The header of a FIN binary frame of `len` payload bytes (2, 4 or 10 bytes, in `out`).
size_t binaryHeader(uint8_t out[10], uint64_t len);

}  // namespace moat::websocket
