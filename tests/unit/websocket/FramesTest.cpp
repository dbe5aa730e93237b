#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gateway/websocket/Frames.h"

using namespace moat::websocket;
using Bytes = std::vector<uint8_t>;

namespace {

// A client frame: masked unless told otherwise, with any header bits.
Bytes frame(uint8_t opcode, const Bytes& payload, bool fin = true, bool mask = true,
            uint8_t rsv = 0) {
    Bytes out;
    out.push_back(static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv << 4) | opcode));
    const uint8_t m = mask ? 0x80 : 0;
    const uint64_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<uint8_t>(m | n));
    } else if (n < 65536) {
        out.push_back(m | 126);
        out.push_back(static_cast<uint8_t>(n >> 8));
        out.push_back(static_cast<uint8_t>(n));
    } else {
        out.push_back(m | 127);
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
    }
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (mask) out.insert(out.end(), key, key + 4);
    for (size_t i = 0; i < payload.size(); ++i)
        out.push_back(mask ? static_cast<uint8_t>(payload[i] ^ key[i % 4]) : payload[i]);
    return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

Bytes bytes(const std::string& s) {
    return Bytes(s.begin(), s.end());
}

// A server close frame as it must appear on the wire.
Bytes serverClose(uint16_t code) {
    if (code == 0) return {0x88, 0x00};
    return {0x88, 0x02, static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
}

struct Fed {
    Deframer::Status status;
    Bytes mqtt, reply;
};

Fed feedAll(Deframer& d, const Bytes& in) {
    Fed f;
    f.status = d.feed(in.data(), in.size(), f.mqtt, f.reply);
    return f;
}

// The stream fed in two pieces split at `at`.
Fed feedSplit(const Bytes& in, size_t at) {
    Deframer d;
    Fed f;
    f.status = d.feed(in.data(), at, f.mqtt, f.reply);
    if (f.status == Deframer::Status::Open)
        f.status = d.feed(in.data() + at, in.size() - at, f.mqtt, f.reply);
    return f;
}

// Two MQTT packets: PINGREQ and a small PUBLISH.
const Bytes kPingreq = {0xc0, 0x00};
const Bytes kPublish = {0x30, 0x05, 0x00, 0x01, 't', 'h', 'i'};

}  // namespace

TEST_CASE("binary frames: payload unmasked, boundaries gone, at every split offset") {
    const Bytes mqtt = cat({kPingreq, kPublish, kPingreq});
    // Several packets in one frame, a packet across frames, a fragmented message with a ping
    // between its fragments, an empty fragment.
    const Bytes stream = cat({frame(2, cat({kPingreq, kPublish})), frame(2, {0xc0}, false),
                              frame(9, bytes("hb")), frame(0, {}, false), frame(0, {0x00}, true)});
    for (size_t at = 0; at <= stream.size(); ++at) {
        INFO("split at " << at);
        Fed f = feedSplit(stream, at);
        CHECK(f.status == Deframer::Status::Open);
        CHECK(f.mqtt == mqtt);
        CHECK(f.reply == Bytes({0x8a, 0x02, 'h', 'b'}));  // pong with the ping's payload
    }
}

TEST_CASE("every byte fed alone gives the same result") {
    const Bytes stream = cat({frame(2, Bytes(300, 0xab)), frame(2, kPublish)});
    Deframer d;
    Fed f;
    for (uint8_t b : stream) REQUIRE(d.feed(&b, 1, f.mqtt, f.reply) == Deframer::Status::Open);
    Bytes want(300, 0xab);
    want.insert(want.end(), kPublish.begin(), kPublish.end());
    CHECK(f.mqtt == want);
    CHECK(f.reply.empty());
}

TEST_CASE("a large frame streams: output grows with input, never held back whole") {
    const Bytes payload(3 * 1024 * 1024 + 17, 0x5a);
    const Bytes stream = frame(2, payload);
    Deframer d;
    size_t total = 0;
    const size_t piece = 64 * 1024;
    for (size_t off = 0; off < stream.size(); off += piece) {
        const size_t n = std::min(piece, stream.size() - off);
        Bytes mqtt, reply;
        REQUIRE(d.feed(stream.data() + off, n, mqtt, reply) == Deframer::Status::Open);
        CHECK(mqtt.size() <= n);
        if (off > 0) CHECK(mqtt.size() + 4096 >= n);  // at most one wslay buffer behind
        total += mqtt.size();
    }
    CHECK(total == payload.size());
}

TEST_CASE("framing violations close with 1002 / 1003, at every split offset") {
    struct Case {
        const char* name;
        Bytes stream;
        uint16_t code;
        Bytes before = {};  // MQTT bytes of the stream before the violation
    };
    const Case cases[] = {
        {"unmasked", frame(2, kPingreq, true, false), close_code::kProtocolError},
        {"unmasked empty close", frame(8, {}, true, false), close_code::kProtocolError},
        {"text", frame(1, bytes("hi")), close_code::kUnsupportedData},
        {"reserved bits", frame(2, kPingreq, true, true, 4), close_code::kProtocolError},
        {"unknown opcode", frame(3, kPingreq), close_code::kProtocolError},
        {"continuation first", frame(0, kPingreq), close_code::kProtocolError},
        {"binary inside a message",
         cat({frame(2, {0xc0}, false), frame(2, {0x00})}),
         close_code::kProtocolError,
         {0xc0}},
        {"text inside a message",
         cat({frame(2, {0xc0}, false), frame(1, {0x00})}),
         close_code::kUnsupportedData,
         {0xc0}},
        {"long ping", frame(9, Bytes(126, 1)), close_code::kProtocolError},
        {"fragmented ping", frame(9, bytes("x"), false), close_code::kProtocolError},
        {"close of one byte", frame(8, {0x03}), close_code::kProtocolError},
        {"close code 1005", frame(8, {0x03, 0xed}), close_code::kProtocolError},
        {"close code 999", frame(8, {0x03, 0xe7}), close_code::kProtocolError},
        {"close reason not UTF-8", frame(8, {0x03, 0xe8, 0xc0, 0x80}), close_code::kProtocolError},
        {"non-minimal length", Bytes{0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 1, 2, 3, 4, 5},
         close_code::kProtocolError},
    };
    for (const Case& c : cases) {
        const Bytes stream = cat({frame(2, kPublish), c.stream, frame(2, kPingreq)});
        for (size_t at = 0; at <= stream.size(); ++at) {
            INFO(c.name << ", split at " << at);
            Fed f = feedSplit(stream, at);
            REQUIRE(f.status == Deframer::Status::Failed);
            CHECK(f.reply == serverClose(c.code));
            CHECK(f.mqtt == cat({kPublish, c.before}));  // what came before, nothing after
        }
    }
}

TEST_CASE("close handshake from the client") {
    SECTION("a code is echoed; later bytes are ignored") {
        Deframer d;
        Fed f = feedAll(d, cat({frame(2, kPingreq), frame(8, {0x03, 0xe8, 'b', 'y', 'e'}),
                                frame(2, kPublish)}));
        CHECK(f.status == Deframer::Status::Closed);
        CHECK(d.closeCode() == 1000);
        CHECK(f.mqtt == kPingreq);
        CHECK(f.reply == serverClose(1000));
        Fed g = feedAll(d, frame(2, kPublish));
        CHECK(g.status == Deframer::Status::Closed);
        CHECK(g.mqtt.empty());
        CHECK(g.reply.empty());
    }
    SECTION("an empty close is answered with an empty close") {
        Deframer d;
        Fed f = feedAll(d, frame(8, {}));
        CHECK(f.status == Deframer::Status::Closed);
        CHECK(d.closeCode() == 0);
        CHECK(f.reply == serverClose(0));
    }
    SECTION("application codes pass") {
        Deframer d;
        CHECK(feedAll(d, frame(8, {0x0f, 0xa0})).status == Deframer::Status::Closed);  // 4000
    }
}

TEST_CASE("pong is ignored, ping answered in order") {
    Deframer d;
    Fed f = feedAll(d, cat({frame(10, bytes("x")), frame(9, {}), frame(9, bytes("abc"))}));
    CHECK(f.status == Deframer::Status::Open);
    CHECK(f.reply == Bytes({0x8a, 0x00, 0x8a, 0x03, 'a', 'b', 'c'}));
}

TEST_CASE("server frames: header sizes at the length boundaries") {
    for (size_t n : {size_t(0), size_t(125), size_t(126), size_t(65535), size_t(65536)}) {
        INFO(n);
        Bytes payload(n, 7), out;
        appendBinary(out, payload.data(), payload.size());
        const size_t header = n < 126 ? 2 : n < 65536 ? 4 : 10;
        REQUIRE(out.size() == header + n);
        CHECK(out[0] == 0x82);
        CHECK((out[1] & 0x80) == 0);  // never masked
        uint8_t h[10];
        CHECK(binaryHeader(h, n) == header);
        CHECK(Bytes(h, h + header) == Bytes(out.begin(), out.begin() + header));
    }
    Bytes close;
    appendClose(close, 1001);
    CHECK(close == serverClose(1001));
}

TEST_CASE("close codes for MQTT reasons") {
    CHECK(closeCodeFor(0x00) == 1000);
    CHECK(closeCodeFor(0x8b) == 1001);
    CHECK(closeCodeFor(0x80) == 1011);
    CHECK(closeCodeFor(0x88) == 1011);
    CHECK(closeCodeFor(0x81) == 1008);  // malformed packet
    CHECK(closeCodeFor(0x87) == 1008);  // not authorized
    CHECK(closeCodeFor(0x95) == 1008);  // packet too large
}
