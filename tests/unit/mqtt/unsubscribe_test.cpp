// UNSUBSCRIBE and UNSUBACK.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

TEST_CASE("UNSUBSCRIBE round trip") {
    for (ProtocolVersion v : kAllVersions) {
        UnsubscribePacket p;
        p.packetId = 77;
        p.filters = {"a/+/c", "#", "$share/g/x", "plain"};
        if (v == ProtocolVersion::V5) p.properties = {Property::user("k", "v")};
        const Bytes wire = encodeUnsubscribe(p, v);
        CHECK(wire[0] == 0xA2);
        CHECK(validFixedHeaderFlags(frameOf(wire), v));
        UnsubscribePacket back;
        REQUIRE(decodeUnsubscribe(bodyOf(wire), frameOf(wire).remainingLength, v, back) ==
                reason::Success);
        CHECK(back == p);
        requireByteRoundTrip(wire, v);
    }
}

TEST_CASE("UNSUBSCRIBE: malformed") {
    for (ProtocolVersion v : kAllVersions) {
        const bool v5 = v == ProtocolVersion::V5;
        CAPTURE(versionName(v));
        auto body = [&](uint16_t id, std::initializer_list<std::string_view> filters,
                        const Bytes& props = {}) {
            Builder b;
            b.u16(id);
            if (v5) b.props(props);
            for (auto f : filters) b.str(f);
            UnsubscribePacket p;
            return decodeUnsubscribe(b.b.data(), b.b.size(), v, p);
        };
        CHECK(body(0, {"a"}) == reason::ProtocolError);
        CHECK(body(1, {}) == reason::ProtocolError);
        CHECK(body(1, {"a/#/b"}) == (v5 ? reason::TopicFilterInvalid : reason::MalformedPacket));
        CHECK(body(1, {"ok", ""}) == (v5 ? reason::TopicFilterInvalid : reason::MalformedPacket));
        CHECK(body(1, {std::string_view("a\0", 2)}) == reason::MalformedPacket);
        if (v5) {
            CHECK(body(1, {"a"}, hex("0B 01")) == reason::ProtocolError);  // sub id not allowed
            CHECK(body(1, {"a"}, hex("26 0001 61")) == reason::MalformedPacket);
        }
        Builder over;
        over.u16(1);
        if (v5) over.props({});
        over.u16(9).raw("a");
        UnsubscribePacket p;
        CHECK(decodeUnsubscribe(over.b.data(), over.b.size(), v, p) == reason::MalformedPacket);
        CHECK(decodeUnsubscribe(over.b.data(), 1, v, p) == reason::MalformedPacket);
    }
    // Flags other than 0b0010 are reserved.
    Frame f;
    const uint8_t b[2] = {0xA0, 0};
    REQUIRE(parseFrame(b, 2, f) == FrameStatus::Ok);
    CHECK_FALSE(validFixedHeaderFlags(f, ProtocolVersion::V311));
}

TEST_CASE("UNSUBACK round trip") {
    for (ProtocolVersion v : kAllVersions) {
        UnsubackPacket p;
        p.packetId = 5;
        if (v == ProtocolVersion::V5) {
            p.codes = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
            p.properties = {Property::string(prop::ReasonString, "r")};
        }
        const Bytes wire = encodeUnsuback(p, v);
        UnsubackPacket back;
        REQUIRE(decodeUnsuback(bodyOf(wire), frameOf(wire).remainingLength, v, back) ==
                reason::Success);
        CHECK(back == p);
        requireByteRoundTrip(wire, v);
        if (v != ProtocolVersion::V5) CHECK(wire == hex("B0 02 0005"));
    }
}

TEST_CASE("UNSUBACK: malformed") {
    UnsubackPacket p;
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        const Bytes extra = hex("0001 00");
        CHECK(decodeUnsuback(extra.data(), extra.size(), v, p) == reason::MalformedPacket);
        const Bytes zero = hex("0000");
        CHECK(decodeUnsuback(zero.data(), zero.size(), v, p) == reason::ProtocolError);
        CHECK(decodeUnsuback(zero.data(), 1, v, p) == reason::MalformedPacket);
    }
    const ProtocolVersion v5 = ProtocolVersion::V5;
    const Bytes noCodes = hex("0001 00");
    CHECK(decodeUnsuback(noCodes.data(), noCodes.size(), v5, p) == reason::ProtocolError);
    const Bytes badCode = hex("0001 00 01");
    CHECK(decodeUnsuback(badCode.data(), badCode.size(), v5, p) == reason::ProtocolError);
    const Bytes subackOnly = hex("0001 00 A2");
    CHECK(decodeUnsuback(subackOnly.data(), subackOnly.size(), v5, p) == reason::ProtocolError);
    const Bytes noProps = hex("0001");
    CHECK(decodeUnsuback(noProps.data(), noProps.size(), v5, p) == reason::MalformedPacket);
}
