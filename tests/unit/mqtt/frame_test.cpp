#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

TEST_CASE("remaining length known answers (spec 1.5.5)") {
    struct Case {
        uint32_t value;
        Bytes encoded;
    };
    const Case cases[] = {
        {0, hex("00")},
        {127, hex("7F")},
        {128, hex("80 01")},
        {16383, hex("FF 7F")},
        {16384, hex("80 80 01")},
        {2097151, hex("FF FF 7F")},
        {2097152, hex("80 80 80 01")},
        {268435455, hex("FF FF FF 7F")},
    };
    for (const auto& c : cases) {
        uint8_t out[4];
        const size_t n = encodeRemainingLength(c.value, out);
        CHECK(Bytes(out, out + n) == c.encoded);

        Bytes packet{0x30};
        packet.insert(packet.end(), c.encoded.begin(), c.encoded.end());
        Frame f;
        REQUIRE(parseFrame(packet.data(), packet.size(), f) == FrameStatus::Ok);
        CHECK(f.remainingLength == c.value);
        CHECK(f.headerSize == 1 + c.encoded.size());
        CHECK(f.totalSize() == 1 + c.encoded.size() + c.value);
        CHECK(f.type() == PacketType::Publish);

        // Every strict prefix of the header needs more.
        for (size_t i = 0; i < packet.size(); ++i) {
            CHECK(parseFrame(packet.data(), i, f) == FrameStatus::NeedMore);
        }
    }
    uint8_t out[4];
    CHECK(encodeRemainingLength(268435456, out) == 0);
}

TEST_CASE("fixed header rejects what cannot be a packet") {
    Frame f;
    SECTION("a fifth length byte") {
        const Bytes b = hex("30 FF FF FF FF 01");
        CHECK(parseFrame(b.data(), b.size(), f) == FrameStatus::Malformed);
        CHECK(parseFrame(b.data(), 5, f) == FrameStatus::Malformed);
    }
    SECTION("packet type 0, even before the length arrives") {
        const Bytes b = hex("00 00");
        CHECK(parseFrame(b.data(), 1, f) == FrameStatus::Malformed);
        CHECK(parseFrame(b.data(), 2, f) == FrameStatus::Malformed);
    }
    SECTION("non-minimal remaining length") {
        for (const Bytes& b : {hex("30 80 00"), hex("30 FF 80 00"), hex("30 80 80 80 00")}) {
            CHECK(parseFrame(b.data(), b.size(), f) == FrameStatus::Malformed);
        }
    }
    SECTION("empty input") {
        CHECK(parseFrame(nullptr, 0, f) == FrameStatus::NeedMore);
    }
}

TEST_CASE("the header is judged before the body arrives") {
    const Bytes b = hex("30 80 80 80 01");  // 2 MiB PUBLISH, nothing of the body yet
    Frame f;
    REQUIRE(parseFrame(b.data(), b.size(), f) == FrameStatus::Ok);
    CHECK(f.remainingLength == 2097152);
    CHECK(f.totalSize() > b.size());
}

TEST_CASE("reserved fixed-header flags") {
    auto check = [](uint8_t first, ProtocolVersion v) {
        Frame f;
        f.firstByte = first;
        return validFixedHeaderFlags(f, v);
    };
    for (ProtocolVersion v : kAllVersions) {
        for (int type = 1; type <= 14; ++type) {
            for (int flags = 0; flags < 16; ++flags) {
                const uint8_t first = uint8_t(type << 4 | flags);
                bool expected;
                if (type == 3) {
                    expected = ((flags >> 1) & 3) != 3;
                } else if (type == 6 || type == 8 || type == 10) {
                    expected = flags == 2;
                } else {
                    expected = flags == 0;
                }
                INFO("type " << type << " flags " << flags);
                CHECK(check(first, v) == expected);
            }
        }
        CHECK(check(0xF0, v) == (v == ProtocolVersion::V5));
        CHECK_FALSE(check(0xF1, v));
        CHECK_FALSE(check(0x00, v));
    }
    // PUBLISH QoS 3 with every other bit combination.
    CHECK_FALSE(check(0x36, ProtocolVersion::V311));
    CHECK_FALSE(check(0x3F, ProtocolVersion::V5));
    CHECK(check(0x3D, ProtocolVersion::V5));  // dup, QoS 2, retain
}
