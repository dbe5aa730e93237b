// DISCONNECT, AUTH, PINGREQ, PINGRESP.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

TEST_CASE("DISCONNECT round trip") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        const Bytes wire = encodeDisconnect(v, reason::ProtocolError);  // reason dropped on v3
        CHECK(wire == hex("E0 00"));
        requireByteRoundTrip(wire, v);
    }
    const ProtocolVersion v5 = ProtocolVersion::V5;
    CHECK(encodeDisconnect(v5, 0) == hex("E0 00"));
    CHECK(encodeDisconnect(v5, reason::MalformedPacket) == hex("E0 01 81"));
    requireByteRoundTrip(hex("E0 01 81"), v5);
    const std::vector<Property> props = {Property::integer(prop::SessionExpiryInterval, 0),
                                         Property::string(prop::ReasonString, "bye"),
                                         Property::string(prop::ServerReference, "b:1883"),
                                         Property::user("k", "v")};
    const Bytes wire = encodeDisconnect(v5, reason::ServerShuttingDown, props);
    DisconnectPacket p;
    REQUIRE(decodeDisconnect(bodyOf(wire), frameOf(wire).remainingLength, v5, p) ==
            reason::Success);
    CHECK(p.reason == reason::ServerShuttingDown);
    CHECK(p.properties == props);
    requireByteRoundTrip(wire, v5);
    // Every reason the spec allows in DISCONNECT round-trips; the others are protocol errors.
    for (int code = 0; code < 256; ++code) {
        const Bytes body{uint8_t(code)};
        const uint8_t rc = decodeDisconnect(body.data(), 1, v5, p);
        CHECK(rc == (validReasonFor(PacketType::Disconnect, uint8_t(code))
                         ? reason::Success
                         : reason::ProtocolError));
    }
}

TEST_CASE("DISCONNECT: malformed") {
    DisconnectPacket p;
    const Bytes one = hex("00");
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        CHECK(decodeDisconnect(one.data(), 1, v, p) == reason::MalformedPacket);
    }
    const ProtocolVersion v5 = ProtocolVersion::V5;
    for (const char* h : {"00 05 11 0000", "00 01 11", "00 00 00", "00 03 11 00000000"}) {
        CAPTURE(h);
        const Bytes b = hex(h);
        CHECK(decodeDisconnect(b.data(), b.size(), v5, p) == reason::MalformedPacket);
    }
    for (const char* h :
         {"00 03 23 0001", "00 05 27 00000001", "00 06 1F 0000 1F 0000", "00 02 17 01"}) {
        CAPTURE(h);
        const Bytes b = hex(h);
        CHECK(decodeDisconnect(b.data(), b.size(), v5, p) == reason::ProtocolError);
    }
    Frame f;
    const uint8_t b[2] = {0xE1, 0};
    REQUIRE(parseFrame(b, 2, f) == FrameStatus::Ok);
    CHECK_FALSE(validFixedHeaderFlags(f, v5));
}

TEST_CASE("AUTH round trip and errors") {
    const ProtocolVersion v5 = ProtocolVersion::V5;
    CHECK(encodeAuth(AuthPacket{}) == hex("F0 00"));
    requireByteRoundTrip(hex("F0 00"), v5);
    AuthPacket p{reason::ContinueAuthentication,
                 {Property::string(prop::AuthenticationMethod, "SCRAM-SHA-256"),
                  Property::string(prop::AuthenticationData, std::string("\0\x01\x02", 3)),
                  Property::string(prop::ReasonString, "more"), Property::user("u", "v")}};
    const Bytes wire = encodeAuth(p);
    AuthPacket back;
    REQUIRE(decodeAuth(bodyOf(wire), frameOf(wire).remainingLength, v5, back) == reason::Success);
    CHECK(back == p);
    requireByteRoundTrip(wire, v5);

    for (const char* h : {"01", "87", "00 00 00"}) {
        const Bytes b = hex(h);
        CHECK(decodeAuth(b.data(), b.size(), v5, back) ==
              (b.size() == 3 ? reason::MalformedPacket : reason::ProtocolError));
    }
    const Bytes dup = hex("18 08 15 0001 61 15 0001 61");
    CHECK(decodeAuth(dup.data(), dup.size(), v5, back) == reason::ProtocolError);
    const Bytes alias = hex("18 03 23 0001");
    CHECK(decodeAuth(alias.data(), alias.size(), v5, back) == reason::ProtocolError);
    // AUTH is reserved before v5: both the flags check and the decoder refuse it.
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        CHECK(decodeAuth(nullptr, 0, v, back) == reason::MalformedPacket);
        CHECK_FALSE(validFixedHeaderFlags(frameOf(hex("F0 00")), v));
    }
    CHECK(validFixedHeaderFlags(frameOf(hex("F0 00")), v5));
    CHECK_FALSE(validFixedHeaderFlags(frameOf(hex("F1 00")), v5));
}

TEST_CASE("PINGREQ / PINGRESP") {
    CHECK(encodePingreq() == hex("C0 00"));
    CHECK(encodePingresp() == hex("D0 00"));
    for (ProtocolVersion v : kAllVersions) {
        requireByteRoundTrip(hex("C0 00"), v);
        requireByteRoundTrip(hex("D0 00"), v);
        CHECK(decodeAny(hex("C0 01 00"), v) == reason::MalformedPacket);
        CHECK(decodeAny(hex("D0 01 00"), v) == reason::MalformedPacket);
        CHECK(decodeAny(hex("C2 00"), v) == reason::MalformedPacket);  // reserved flags
        CHECK(decodeAny(hex("D8 00"), v) == reason::MalformedPacket);
    }
}
