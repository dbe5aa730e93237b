// Fuzzes the WebSocket deframer (gateway/websocket/Frames.h) with client bytes. The first byte
// picks where the stream is cut into two feeds. Checks:
//   - the MQTT bytes and the replies do not depend on how the stream is cut (streaming);
//   - MQTT output never exceeds the input (nothing invented, nothing buffered whole);
//   - Failed always answers with exactly one close frame of 1002 / 1003, Closed with one
//     close frame; after either, more bytes change nothing;
//   - re-framing the MQTT output with the server framer and the unit's own client mask
//     gives the same MQTT bytes back (framer and deframer agree).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "gateway/websocket/Frames.h"

using namespace moat::websocket;
using Bytes = std::vector<uint8_t>;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

struct Run {
    Deframer::Status status;
    Bytes mqtt, reply;
    uint16_t code;
};

Run feed(const uint8_t* in, size_t len, size_t cut) {
    Deframer d;
    Run r;
    r.status = d.feed(in, cut, r.mqtt, r.reply);
    if (r.status == Deframer::Status::Open) r.status = d.feed(in + cut, len - cut, r.mqtt, r.reply);
    r.code = d.closeCode();
    if (r.status != Deframer::Status::Open) {
        Bytes m, rep;
        const uint8_t extra[] = {0x82, 0x81, 1, 2, 3, 4, 5};
        check(d.feed(extra, sizeof extra, m, rep) == r.status);
        check(m.empty() && rep.empty());
    }
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t* in = data + 1;
    const size_t len = size - 1;
    const size_t cut = len == 0 ? 0 : data[0] % (len + 1);

    Run whole = feed(in, len, len);
    Run split = feed(in, len, cut);
    check(whole.status == split.status);
    check(whole.mqtt == split.mqtt);
    check(whole.reply == split.reply);
    check(whole.mqtt.size() <= len);
    if (whole.status == Deframer::Status::Failed) {
        check(whole.code == 1002 || whole.code == 1003);
        Bytes close;
        appendClose(close, whole.code);
        check(whole.reply.size() >= close.size());
        check(Bytes(whole.reply.end() - close.size(), whole.reply.end()) == close);
    }

    // Server frames of the MQTT bytes, masked the way a client would, deframe to the same.
    Bytes frame;
    appendBinary(frame, whole.mqtt.data(), whole.mqtt.size());
    const size_t header = frame.size() - whole.mqtt.size();
    Bytes client(frame.begin(), frame.begin() + header);
    client[1] |= 0x80;
    const uint8_t key[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    client.insert(client.end(), key, key + 4);
    for (size_t i = 0; i < whole.mqtt.size(); ++i) client.push_back(whole.mqtt[i] ^ key[i % 4]);
    Run back = feed(client.data(), client.size(), client.size() / 2);
    check(back.status == Deframer::Status::Open);
    check(back.mqtt == whole.mqtt);
    check(back.reply.empty());
    return 0;
}
