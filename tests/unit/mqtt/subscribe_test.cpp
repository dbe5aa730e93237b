// SUBSCRIBE: round trips per version (v5 options and properties), filter syntax, option bits,
// packet-id rules, truncations.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {

uint8_t decode(const Builder& b, ProtocolVersion v, SubscribePacket* outp = nullptr) {
    SubscribePacket p;
    const uint8_t rc = decodeSubscribe(b.b.data(), b.b.size(), v, p);
    if (outp) *outp = p;
    return rc;
}

Builder head(ProtocolVersion v, uint16_t id = 1, const Bytes& props = {}) {
    Builder b;
    b.u16(id);
    if (v == ProtocolVersion::V5) b.props(props);
    return b;
}

}  // namespace

TEST_CASE("SUBSCRIBE round trip, every version") {
    for (ProtocolVersion v : kAllVersions) {
        CAPTURE(versionName(v));
        SubscribePacket p;
        p.packetId = 42;
        p.subscriptions = {{"devices/+/telemetry/#", 0}, {"#", 1}, {"a/b", 2},        {"+", 0},
                           {"$share/group/x/#", 1},      {"/", 0}, {"caf\xC3\xA9", 1}};
        if (v == ProtocolVersion::V5) {
            p.subscriptions.push_back({"nl/rap/rh", uint8_t(0x01 | 0x04 | 0x08 | 0x20)});
            p.subscriptions.push_back({"rh1", 0x12});
            p.properties = {Property::integer(prop::SubscriptionIdentifier, 300),
                            Property::user("k", "v"), Property::user("k", "w")};
        }
        const Bytes wire = encodeSubscribe(p, v);
        CHECK(wire[0] == 0x82);
        CHECK(validFixedHeaderFlags(frameOf(wire), v));
        SubscribePacket back;
        REQUIRE(decodeSubscribe(bodyOf(wire), frameOf(wire).remainingLength, v, back) ==
                reason::Success);
        CHECK(back == p);
        requireByteRoundTrip(wire, v);
        if (v == ProtocolVersion::V5) {
            CHECK(back.subscriptionIdentifier() == 300u);
            const Subscription& s = back.subscriptions[back.subscriptions.size() - 2];
            CHECK(s.qos() == 1);
            CHECK(s.noLocal());
            CHECK(s.retainAsPublished());
            CHECK(s.retainHandling() == 2);
        }
    }
}

TEST_CASE("SUBSCRIBE known answer (3.1.1)") {
    const Bytes wire = hex("82 0A 000A 0005 612F622F23 01");
    SubscribePacket p;
    REQUIRE(decodeSubscribe(bodyOf(wire), 10, ProtocolVersion::V311, p) == reason::Success);
    CHECK(p.packetId == 10);
    REQUIRE(p.subscriptions.size() == 1);
    CHECK(p.subscriptions[0].filter == "a/b/#");
    CHECK(p.subscriptions[0].qos() == 1);
}

TEST_CASE("SUBSCRIBE: reserved fixed-header flags") {
    for (ProtocolVersion v : kAllVersions) {
        for (uint8_t flags = 0; flags < 16; ++flags) {
            Frame f;
            const uint8_t b[2] = {uint8_t(0x80 | flags), 0};
            REQUIRE(parseFrame(b, 2, f) == FrameStatus::Ok);
            CHECK(validFixedHeaderFlags(f, v) == (flags == 2));
        }
    }
}

TEST_CASE("SUBSCRIBE: invalid filters") {
    const char* bad[] = {"",          "a/#/b",       "a#",         "#/",         "a+",
                         "+a/b",      "a/b+",        "##",         "$share//a",  "$share/g",
                         "$share/g/", "$share/g+/a", "$share/#/a", "$share/g/a#"};
    for (ProtocolVersion v : kAllVersions) {
        for (const char* f : bad) {
            CAPTURE(versionName(v), f);
            Builder b = head(v);
            b.str(f).u8(0);
            CHECK(decode(b, v) == (v == ProtocolVersion::V5 ? reason::TopicFilterInvalid
                                                            : reason::MalformedPacket));
        }
        // Bad UTF-8 is malformed in every version.
        for (std::string_view s : {std::string_view("a\0", 2), std::string_view("\xC0\x80"),
                                   std::string_view("\xED\xA0\x80/#")}) {
            Builder b = head(v);
            b.str(s).u8(0);
            CHECK(decode(b, v) == reason::MalformedPacket);
        }
    }
}

TEST_CASE("SUBSCRIBE: options byte") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        for (uint8_t o : {0x03, 0x04, 0x08, 0x10, 0x40, 0x80}) {
            CAPTURE(int(o));
            Builder b = head(v);
            b.str("a").u8(o);
            CHECK(decode(b, v) == reason::MalformedPacket);
        }
    }
    const ProtocolVersion v5 = ProtocolVersion::V5;
    for (uint8_t o : {0x03, 0x40, 0x80, 0xC0}) {
        Builder b = head(v5);
        b.str("a").u8(o);
        CHECK(decode(b, v5) == reason::MalformedPacket);
    }
    Builder rh3 = head(v5);
    rh3.str("a").u8(0x30);
    CHECK(decode(rh3, v5) == reason::ProtocolError);
    Builder shareNoLocal = head(v5);
    shareNoLocal.str("$share/g/a").u8(0x04);
    CHECK(decode(shareNoLocal, v5) == reason::ProtocolError);
    Builder missing = head(v5);
    missing.str("a");
    CHECK(decode(missing, v5) == reason::MalformedPacket);
}

TEST_CASE("SUBSCRIBE: packet id and empty list") {
    for (ProtocolVersion v : kAllVersions) {
        Builder zero = head(v, 0);
        zero.str("a").u8(0);
        CHECK(decode(zero, v) == reason::ProtocolError);
        CHECK(decode(head(v), v) == reason::ProtocolError);  // no subscription
        Builder shortId;
        shortId.u8(1);
        CHECK(decode(shortId, v) == reason::MalformedPacket);
        // filter length past the end
        Builder over = head(v);
        over.u16(10).raw("ab");
        CHECK(decode(over, v) == reason::MalformedPacket);
    }
}

TEST_CASE("SUBSCRIBE v5: property errors") {
    const ProtocolVersion v = ProtocolVersion::V5;
    const struct {
        const char* what;
        Bytes props;
        uint8_t rc;
    } cases[] = {
        {"subscription id 0", hex("0B 00"), reason::ProtocolError},
        {"two subscription ids", hex("0B 01 0B 02"), reason::ProtocolError},
        {"topic alias", hex("23 0001"), reason::ProtocolError},
        {"reason string", hex("1F 0000"), reason::ProtocolError},
        {"truncated varint", hex("0B 80"), reason::MalformedPacket},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Builder b = head(v, 1, c.props);
        b.str("a").u8(0);
        CHECK(decode(b, v) == c.rc);
    }
}

TEST_CASE("SUBSCRIBE: every truncation fails") {
    for (ProtocolVersion v : kAllVersions) {
        SubscribePacket p;
        p.packetId = 3;
        p.subscriptions = {{"a/b", 1}, {"c/#", 0}};
        if (v == ProtocolVersion::V5)
            p.properties = {Property::integer(prop::SubscriptionIdentifier, 7)};
        const Bytes wire = encodeSubscribe(p, v);
        const Frame f = frameOf(wire);
        const size_t firstEnd = f.remainingLength - 6;  // after the first filter's options
        for (size_t n = 0; n < f.remainingLength; ++n) {
            if (n == firstEnd) continue;  // a complete one-filter packet
            CAPTURE(versionName(v), n);
            SubscribePacket out;
            const uint8_t rc = decodeSubscribe(bodyOf(wire), n, v, out);
            CHECK(rc != reason::Success);
        }
    }
}
