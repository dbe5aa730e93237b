// PUBACK / PUBREC / PUBREL / PUBCOMP: the three v5 forms, v3 exact length, reason validity.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {
constexpr PacketType kAcks[] = {PacketType::Puback, PacketType::Pubrec, PacketType::Pubrel,
                                PacketType::Pubcomp};

uint8_t decode(PacketType t, const Bytes& body, ProtocolVersion v, AckPacket* outp = nullptr) {
    AckPacket p;
    const uint8_t rc = decodeAck(t, body.data(), body.size(), v, p);
    if (outp) *outp = p;
    return rc;
}
}  // namespace

TEST_CASE("acks round trip, every version") {
    for (PacketType t : kAcks) {
        for (ProtocolVersion v : kAllVersions) {
            CAPTURE(packetTypeName(t), versionName(v));
            AckPacket p{t, 0xABCD, 0, {}};
            const Bytes wire = encodeAck(p, v);
            const uint8_t first = uint8_t(uint8_t(t) << 4 | (t == PacketType::Pubrel ? 2 : 0));
            CHECK(wire == Bytes{first, 0x02, 0xAB, 0xCD});  // shortest form in every version
            CHECK(validFixedHeaderFlags(frameOf(wire), v));
            requireByteRoundTrip(wire, v);
        }
        // v5 with a reason, then with properties.
        const uint8_t code = (t == PacketType::Pubrel || t == PacketType::Pubcomp) ? 0x92 : 0x87;
        AckPacket r{t, 1, code, {}};
        const Bytes w3 = encodeAck(r, ProtocolVersion::V5);
        CHECK(w3.size() == 5);
        requireByteRoundTrip(w3, ProtocolVersion::V5);
        AckPacket rp{
            t, 1, code, {Property::string(prop::ReasonString, "denied"), Property::user("a", "b")}};
        const Bytes w4 = encodeAck(rp, ProtocolVersion::V5);
        AckPacket back;
        REQUIRE(decodeAck(t, bodyOf(w4), frameOf(w4).remainingLength, ProtocolVersion::V5, back) ==
                reason::Success);
        CHECK(back == rp);
        requireByteRoundTrip(w4, ProtocolVersion::V5);
        // Properties with reason 0 keep the reason byte.
        AckPacket zp{t, 1, 0, {Property::user("a", "b")}};
        requireByteRoundTrip(encodeAck(zp, ProtocolVersion::V5), ProtocolVersion::V5);
    }
}

TEST_CASE("acks v5: the non-canonical forms decode to the same packet") {
    for (PacketType t : kAcks) {
        AckPacket p;
        REQUIRE(decode(t, hex("0001 00"), ProtocolVersion::V5, &p) == reason::Success);
        CHECK(p.reason == 0);
        REQUIRE(decode(t, hex("0001 00 00"), ProtocolVersion::V5, &p) == reason::Success);
        CHECK(p.reason == 0);
        CHECK(p.properties.empty());
    }
}

TEST_CASE("acks: malformed") {
    for (PacketType t : kAcks) {
        CAPTURE(packetTypeName(t));
        for (ProtocolVersion v : kAllVersions) {
            CHECK(decode(t, hex(""), v) == reason::MalformedPacket);
            CHECK(decode(t, hex("00"), v) == reason::MalformedPacket);
            CHECK(decode(t, hex("0000"), v) == reason::ProtocolError);  // packet id 0
        }
        for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
            CHECK(decode(t, hex("0001 00"), v) == reason::MalformedPacket);
        }
        const ProtocolVersion v5 = ProtocolVersion::V5;
        CHECK(decode(t, hex("0001 01"), v5) == reason::ProtocolError);  // not an ack reason
        CHECK(decode(t, hex("0001 00 05 1F 0001"), v5) == reason::MalformedPacket);
        CHECK(decode(t, hex("0001 00 01 1F"), v5) == reason::MalformedPacket);
        CHECK(decode(t, hex("0001 00 00 00"), v5) == reason::MalformedPacket);  // trailing
        CHECK(decode(t, hex("0001 00 03 23 0001"), v5) == reason::ProtocolError);
        CHECK(decode(t, hex("0001 00 06 1F 0000 1F 0000"), v5) == reason::ProtocolError);
    }
    // PUBREL / PUBCOMP allow only 0x00 and 0x92; PUBACK / PUBREC not 0x92.
    CHECK(decode(PacketType::Pubrel, hex("0001 10"), ProtocolVersion::V5) == reason::ProtocolError);
    CHECK(decode(PacketType::Pubcomp, hex("0001 87"), ProtocolVersion::V5) ==
          reason::ProtocolError);
    CHECK(decode(PacketType::Puback, hex("0001 92"), ProtocolVersion::V5) == reason::ProtocolError);
    CHECK(decode(PacketType::Puback, hex("0001 10"), ProtocolVersion::V5) == reason::Success);
    // Only ack types.
    CHECK(decode(PacketType::Publish, hex("0001"), ProtocolVersion::V5) == reason::ProtocolError);
    Bytes out;
    CHECK_FALSE(encodeAck(AckPacket{PacketType::Suback, 1, 0, {}}, ProtocolVersion::V5, out));
    CHECK(out.empty());
}

TEST_CASE("acks: reserved fixed-header flags") {
    for (PacketType t : kAcks) {
        for (uint8_t flags = 0; flags < 16; ++flags) {
            const uint8_t b[2] = {uint8_t(uint8_t(t) << 4 | flags), 2};
            Frame f;
            REQUIRE(parseFrame(b, 2, f) == FrameStatus::Ok);
            const uint8_t expected = t == PacketType::Pubrel ? 2 : 0;
            CHECK(validFixedHeaderFlags(f, ProtocolVersion::V5) == (flags == expected));
        }
    }
}
