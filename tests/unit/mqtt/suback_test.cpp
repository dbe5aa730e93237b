// SUBACK: round trips, return/reason code validity per version.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {
uint8_t decode(const Bytes& body, ProtocolVersion v, SubackPacket* outp = nullptr) {
    SubackPacket p;
    const uint8_t rc = decodeSuback(body.data(), body.size(), v, p);
    if (outp) *outp = p;
    return rc;
}
}  // namespace

TEST_CASE("SUBACK round trip") {
    for (ProtocolVersion v : kAllVersions) {
        SubackPacket p;
        p.packetId = 0x1234;
        if (v == ProtocolVersion::V5) {
            p.codes = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
            p.properties = {Property::string(prop::ReasonString, "partly"),
                            Property::user("x", "y")};
        } else {
            p.codes = {0x00, 0x01, 0x02, 0x80};
        }
        const Bytes wire = encodeSuback(p, v);
        CHECK(wire[0] == 0x90);
        SubackPacket back;
        REQUIRE(decodeSuback(bodyOf(wire), frameOf(wire).remainingLength, v, back) ==
                reason::Success);
        CHECK(back == p);
        requireByteRoundTrip(wire, v);
    }
    CHECK(encodeSuback(SubackPacket{1, {0x80}, {}}, ProtocolVersion::V311) == hex("90 03 0001 80"));
}

TEST_CASE("SUBACK: malformed") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        CHECK(decode(hex("0001"), v) == reason::ProtocolError);  // no codes
        CHECK(decode(hex("0001 03"), v) == reason::ProtocolError);
        CHECK(decode(hex("0001 87"), v) == reason::ProtocolError);
        CHECK(decode(hex("0000 00"), v) == reason::ProtocolError);  // packet id 0
        CHECK(decode(hex("00"), v) == reason::MalformedPacket);
    }
    const ProtocolVersion v5 = ProtocolVersion::V5;
    CHECK(decode(hex("0001 00"), v5) == reason::ProtocolError);  // property length only
    CHECK(decode(hex("0001 00 03"), v5) == reason::ProtocolError);
    CHECK(decode(hex("0001 00 10"), v5) == reason::ProtocolError);
    CHECK(decode(hex("0001"), v5) == reason::MalformedPacket);
    CHECK(decode(hex("0001 05 1F 0001"), v5) == reason::MalformedPacket);
    CHECK(decode(hex("0001 02 1F 00 87"), v5) == reason::MalformedPacket);  // value crosses end
    CHECK(decode(hex("0001 03 23 0001 87"), v5) == reason::ProtocolError);  // topic alias
    CHECK(decode(hex("0001 00 87"), v5) == reason::Success);
}
