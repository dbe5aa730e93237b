// CONNACK: round trips per version (every v5 CONNACK property), malformed cases.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {
uint8_t decode(const Bytes& body, ProtocolVersion v, ConnackPacket* outp = nullptr) {
    ConnackPacket p;
    const uint8_t rc = decodeConnack(body.data(), body.size(), v, p);
    if (outp) *outp = p;
    return rc;
}
}  // namespace

TEST_CASE("CONNACK round trip, v3") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        for (uint8_t code = 0; code <= 5; ++code) {
            const bool session = code == 0 && v == ProtocolVersion::V311;
            const Bytes wire = encodeConnack(v, session, code);
            CHECK(wire == Bytes{0x20, 0x02, uint8_t(session ? 1 : 0), code});
            ConnackPacket p;
            REQUIRE(decodeConnack(bodyOf(wire), 2, v, p) == reason::Success);
            CHECK(p.code == code);
            CHECK(p.sessionPresent == session);
            requireByteRoundTrip(wire, v);
        }
    }
    // 3.1 has no session present flag: the encoder drops it and the decoder ignores the byte.
    CHECK(encodeConnack(ProtocolVersion::V31, true, 0) == hex("20 02 00 00"));
    ConnackPacket p;
    REQUIRE(decode(hex("01 00"), ProtocolVersion::V31, &p) == reason::Success);
    CHECK_FALSE(p.sessionPresent);
}

TEST_CASE("CONNACK round trip, v5 with every CONNACK property") {
    const std::vector<Property> props = {
        Property::integer(prop::SessionExpiryInterval, 120),
        Property::integer(prop::ReceiveMaximum, 100),
        Property::integer(prop::MaximumQos, 1),
        Property::integer(prop::RetainAvailable, 0),
        Property::integer(prop::MaximumPacketSize, 262144),
        Property::string(prop::AssignedClientIdentifier, "auto-1"),
        Property::integer(prop::TopicAliasMaximum, 16),
        Property::string(prop::ReasonString, "welcome"),
        Property::user("a", "b"),
        Property::user("a", "c"),
        Property::integer(prop::WildcardSubscriptionAvailable, 1),
        Property::integer(prop::SubscriptionIdentifierAvailable, 0),
        Property::integer(prop::SharedSubscriptionAvailable, 1),
        Property::integer(prop::ServerKeepAlive, 30),
        Property::string(prop::ResponseInformation, "resp/"),
        Property::string(prop::ServerReference, "other:8883"),
        Property::string(prop::AuthenticationMethod, "m"),
        Property::string(prop::AuthenticationData, std::string("\0\1", 2)),
    };
    const Bytes wire = encodeConnack(ProtocolVersion::V5, true, 0, props);
    ConnackPacket p;
    REQUIRE(decodeConnack(bodyOf(wire), frameOf(wire).remainingLength, ProtocolVersion::V5, p) ==
            reason::Success);
    CHECK(p.sessionPresent);
    CHECK(p.code == 0);
    CHECK(p.properties == props);
    requireByteRoundTrip(wire, ProtocolVersion::V5);
    // Refusals without properties.
    for (uint8_t code : {0x80, 0x84, 0x85, 0x86, 0x87, 0x8A, 0x97}) {
        const Bytes w = encodeConnack(ProtocolVersion::V5, false, code);
        CHECK(w == Bytes{0x20, 0x03, 0x00, code, 0x00});
        requireByteRoundTrip(w, ProtocolVersion::V5);
    }
}

TEST_CASE("CONNACK v3: malformed") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        CHECK(decode(hex(""), v) == reason::MalformedPacket);
        CHECK(decode(hex("00"), v) == reason::MalformedPacket);
        CHECK(decode(hex("00 00 00"), v) == reason::MalformedPacket);
        CHECK(decode(hex("00 06"), v) == reason::ProtocolError);
        CHECK(decode(hex("00 80"), v) == reason::ProtocolError);
    }
    CHECK(decode(hex("02 00"), ProtocolVersion::V311) == reason::MalformedPacket);
    CHECK(decode(hex("80 00"), ProtocolVersion::V311) == reason::MalformedPacket);
    CHECK(decode(hex("01 05"), ProtocolVersion::V311) == reason::ProtocolError);
}

TEST_CASE("CONNACK v5: malformed") {
    const ProtocolVersion v = ProtocolVersion::V5;
    CHECK(decode(hex(""), v) == reason::MalformedPacket);
    CHECK(decode(hex("00"), v) == reason::MalformedPacket);
    CHECK(decode(hex("00 00"), v) == reason::MalformedPacket);  // property length missing
    CHECK(decode(hex("00 00 00"), v) == reason::Success);
    CHECK(decode(hex("00 00 00 00"), v) == reason::MalformedPacket);  // trailing
    CHECK(decode(hex("02 00 00"), v) == reason::MalformedPacket);     // reserved flag
    CHECK(decode(hex("00 01 00"), v) == reason::ProtocolError);       // not a CONNACK reason
    CHECK(decode(hex("00 8E 00"), v) == reason::ProtocolError);
    CHECK(decode(hex("01 87 00"), v) == reason::ProtocolError);        // session present + refusal
    CHECK(decode(hex("00 00 02 24 02"), v) == reason::ProtocolError);  // maximum QoS 2
    CHECK(decode(hex("00 00 02 25 05"), v) == reason::ProtocolError);  // retain available 5
    CHECK(decode(hex("00 00 03 23 00 01"), v) == reason::ProtocolError);         // topic alias
    CHECK(decode(hex("00 00 02 17 01"), v) == reason::ProtocolError);            // CONNECT-only
    CHECK(decode(hex("00 00 06 13 0001 13 0001"), v) == reason::ProtocolError);  // duplicate
    CHECK(decode(hex("00 00 05 27 00000000"), v) == reason::ProtocolError);      // max packet 0
    CHECK(decode(hex("00 00 05 12 0005 61"), v) == reason::MalformedPacket);     // truncated
    CHECK(decode(hex("00 00 09 12 0005 61"), v) == reason::MalformedPacket);     // block too long
}
