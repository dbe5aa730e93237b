#pragma once
// What the inspection pipeline decides for one MQTT packet (Envoy-filter style): the
// connection layer carries it out. Default-constructed = forward the original bytes, and
// costs no allocation, which is the common case on the data path.

#include <cstdint>
#include <vector>

namespace moat::inspect {

struct Verdict {
    enum class Kind : uint8_t {
        Forward,  // send the packet's original bytes onwards
        Drop,     // send nothing onwards
        Replace,  // send `onward` instead of the original bytes
        Close,    // protocol violation / policy: close the connection
        Hold,     // a limit is reached: keep the packet buffered, read nothing for holdMs
    };
    Kind kind = Kind::Forward;
    // Close: the v5 DISCONNECT reason sent to the client first (0 = close silently; v3 clients
    // never get a DISCONNECT from the server side).
    uint8_t disconnectReason = 0;
    // Forward / Replace: the connection ends after this packet (a DISCONNECT went through).
    bool endAfter = false;
    uint64_t holdMs = 0;  // Hold: read again after this long
    // Replace: the re-encoded packet. Close: a last packet for the other side, if any (the
    // client's CONNACK refusal when the broker fails before answering CONNECT).
    std::vector<uint8_t> onward;
    std::vector<uint8_t> reply;  // packets sent back to the sender (gateway-made acks)

    static Verdict forward() { return {}; }
    static Verdict drop() { return Verdict{Kind::Drop}; }
    static Verdict close(uint8_t reason) { return Verdict{Kind::Close, reason}; }
    static Verdict hold(uint64_t ms) {
        Verdict v{Kind::Hold};
        v.holdMs = ms;
        return v;
    }
    static Verdict replace(std::vector<uint8_t> bytes) {
        Verdict v{Kind::Replace};
        v.onward = std::move(bytes);
        return v;
    }
};

}  // namespace moat::inspect
