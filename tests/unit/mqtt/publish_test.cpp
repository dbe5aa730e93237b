// PUBLISH: the allocation-free view decoder, round trips for every version and QoS, v5
// properties, and every malformed case with its reason code.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {

uint8_t decode(const Bytes& wire, ProtocolVersion v, PublishView* outp = nullptr) {
    PublishView view;
    const uint8_t rc = decodePublish(frameOf(wire), bodyOf(wire), v, view);
    if (outp) *outp = view;
    return rc;
}

Bytes publish(uint8_t flags, const Builder& body) {
    return body.packet(0x30 | flags);
}

}  // namespace

TEST_CASE("PUBLISH round trip: every version, QoS, retain and dup") {
    for (ProtocolVersion v : kAllVersions) {
        for (uint8_t qos = 0; qos <= 2; ++qos) {
            for (bool retain : {false, true}) {
                for (bool dup : {false, true}) {
                    if (dup && qos == 0) continue;
                    CAPTURE(versionName(v), int(qos), retain, dup);
                    PublishPacket p;
                    p.topic = "devices/d1/telemetry";
                    p.payload = std::string("\0\x01\xFFpayload", 10);
                    p.qos = qos;
                    p.retain = retain;
                    p.dup = dup;
                    p.packetId = qos ? 0xBEEF : 0;
                    const Bytes wire = encodePublish(p, v);
                    REQUIRE(!wire.empty());
                    CHECK(validFixedHeaderFlags(frameOf(wire), v));
                    PublishView view;
                    REQUIRE(decode(wire, v, &view) == reason::Success);
                    CHECK(view.topic == p.topic);
                    CHECK(view.payload == p.payload);
                    CHECK(view.qos == qos);
                    CHECK(view.retain == retain);
                    CHECK(view.dup == dup);
                    CHECK(view.packetId == p.packetId);
                    CHECK(toPublishPacket(view) == p);
                    requireByteRoundTrip(wire, v);
                }
            }
        }
    }
}

TEST_CASE("PUBLISH known answer (3.1.1)") {
    const Bytes wire = hex("32 0A 0003 612F62 0007 68 69 21");
    PublishView view;
    REQUIRE(decode(wire, ProtocolVersion::V311, &view) == reason::Success);
    CHECK(view.topic == "a/b");
    CHECK(view.qos == 1);
    CHECK(view.packetId == 7);
    CHECK(view.payload == "hi!");
    // The view borrows from the buffer.
    CHECK(reinterpret_cast<const uint8_t*>(view.topic.data()) == wire.data() + 4);
}

TEST_CASE("PUBLISH v5 with every PUBLISH property") {
    PublishPacket p;
    p.topic = "t";
    p.payload = "{}";
    p.qos = 1;
    p.packetId = 1;
    p.properties = {
        Property::integer(prop::PayloadFormatIndicator, 1),
        Property::integer(prop::MessageExpiryInterval, 60),
        Property::string(prop::ContentType, "application/json"),
        Property::string(prop::ResponseTopic, "reply/t"),
        Property::string(prop::CorrelationData, std::string("\0\xFF", 2)),
        Property::user("a", "1"),
        Property::user("b", "2"),
        Property::user("a", "3"),
        Property::integer(prop::TopicAlias, 5),
        Property::integer(prop::SubscriptionIdentifier, 1),
        Property::integer(prop::SubscriptionIdentifier, 268435455),
    };
    const Bytes wire = encodePublish(p, ProtocolVersion::V5);
    PublishView view;
    REQUIRE(decode(wire, ProtocolVersion::V5, &view) == reason::Success);
    CHECK(view.topicAlias == uint16_t(5));
    CHECK(view.userPropertyCount == 3);
    CHECK(view.hasSubscriptionId);
    CHECK(view.payload == "{}");
    CHECK(toPublishPacket(view) == p);
    PropertyList list;
    REQUIRE(parseProperties(view.properties.data(), view.properties.size(), PacketType::Publish,
                            list) == reason::Success);
    CHECK(list.size() == p.properties.size());
    requireByteRoundTrip(wire, ProtocolVersion::V5);

    // An empty topic with an alias is how v5 reuses an alias.
    PublishPacket a;
    a.properties = {Property::integer(prop::TopicAlias, 5)};
    REQUIRE(decode(encodePublish(a, ProtocolVersion::V5), ProtocolVersion::V5, &view) ==
            reason::Success);
    CHECK(view.topic.empty());
    CHECK(view.topicAlias == uint16_t(5));
}

TEST_CASE("PUBLISH: malformed fixed-header flags") {
    for (ProtocolVersion v : kAllVersions) {
        Builder b;
        b.str("t").u16(1);
        CHECK(decode(publish(0x06, b), v) == reason::MalformedPacket);  // QoS 3
        CHECK_FALSE(validFixedHeaderFlags(frameOf(publish(0x06, b)), v));
        Builder q0;
        q0.str("t");
        if (v == ProtocolVersion::V5) q0.props({});
        CHECK(decode(publish(0x08, q0), v) == reason::MalformedPacket);  // DUP at QoS 0
    }
}

TEST_CASE("PUBLISH: topic errors") {
    for (ProtocolVersion v : kAllVersions) {
        const bool v5 = v == ProtocolVersion::V5;
        CAPTURE(versionName(v));
        auto body = [&](std::string_view topic) {
            Builder b;
            b.str(topic);
            if (v5) b.props({});
            b.raw("payload");
            return publish(0, b);
        };
        for (const char* t : {"a/+", "+", "#", "a/#", "a+b", "a#"}) {
            CAPTURE(t);
            CHECK(decode(body(t), v) == (v5 ? reason::TopicNameInvalid : reason::MalformedPacket));
        }
        CHECK(decode(body(std::string_view("a\0b", 3)), v) == reason::MalformedPacket);
        CHECK(decode(body("\xC3"), v) == reason::MalformedPacket);
        CHECK(decode(body("\xED\xBF\xBF"), v) == reason::MalformedPacket);
        CHECK(decode(body(""), v) == (v5 ? reason::ProtocolError : reason::MalformedPacket));
        // A topic length running past the packet.
        Builder over;
        over.u16(50).raw("abc");
        CHECK(decode(publish(0, over), v) == reason::MalformedPacket);
    }
}

TEST_CASE("PUBLISH: packet id rules") {
    for (ProtocolVersion v : kAllVersions) {
        for (uint8_t qos : {1, 2}) {
            Builder b;
            b.str("t").u16(0);
            if (v == ProtocolVersion::V5) b.props({});
            CHECK(decode(publish(uint8_t(qos << 1), b), v) == reason::ProtocolError);
            Builder missing;
            missing.str("t").u8(1);
            CHECK(decode(publish(uint8_t(qos << 1), missing), v) == reason::MalformedPacket);
        }
    }
}

TEST_CASE("PUBLISH v5: property errors") {
    const struct {
        const char* what;
        Bytes props;
        uint8_t rc;
    } cases[] = {
        {"topic alias 0", hex("23 0000"), reason::TopicAliasInvalid},
        {"duplicate topic alias", hex("23 0001 23 0002"), reason::ProtocolError},
        {"duplicate message expiry", hex("02 00000001 02 00000001"), reason::ProtocolError},
        {"session expiry in PUBLISH", hex("11 00000001"), reason::ProtocolError},
        {"will delay in PUBLISH", hex("18 00000001"), reason::ProtocolError},
        {"reason string in PUBLISH", hex("1F 0000"), reason::ProtocolError},
        {"payload format 2", hex("01 02"), reason::ProtocolError},
        {"subscription id 0", hex("0B 00"), reason::ProtocolError},
        {"subscription id non-minimal", hex("0B 80 00"), reason::MalformedPacket},
        {"subscription id 5 bytes", hex("0B FF FF FF FF 01"), reason::MalformedPacket},
        {"unknown id", hex("00"), reason::MalformedPacket},
        {"truncated alias", hex("23 00"), reason::MalformedPacket},
        {"content type bad UTF-8", hex("03 0002 C3 28"), reason::MalformedPacket},
        {"response topic with NUL", hex("08 0001 00"), reason::MalformedPacket},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Builder b;
        b.str("t").props(c.props).raw("x");
        CHECK(decode(publish(0, b), ProtocolVersion::V5) == c.rc);
    }
    // Property length past the end of the packet.
    Builder b;
    b.str("t").raw(hex("20 23 0001"));
    CHECK(decode(publish(0, b), ProtocolVersion::V5) == reason::MalformedPacket);
    // Missing property length altogether.
    Builder none;
    none.str("t");
    CHECK(decode(publish(0, none), ProtocolVersion::V5) == reason::MalformedPacket);
}

TEST_CASE("PUBLISH: every truncation of the variable header is malformed") {
    for (ProtocolVersion v : kAllVersions) {
        PublishPacket p;
        p.topic = "devices/x";
        p.qos = 2;
        p.packetId = 9;
        if (v == ProtocolVersion::V5) p.properties = {Property::integer(prop::TopicAlias, 3)};
        const Bytes wire = encodePublish(p, v);  // empty payload: the header is the body
        const Frame f = frameOf(wire);
        for (size_t n = 0; n < f.remainingLength; ++n) {
            CAPTURE(versionName(v), n);
            Frame cut = f;
            cut.remainingLength = uint32_t(n);
            PublishView view;
            CHECK(decodePublish(cut, bodyOf(wire), v, view) == reason::MalformedPacket);
        }
    }
}

TEST_CASE("PUBLISH encoder refuses a topic over 65535 bytes") {
    PublishPacket p;
    p.topic.assign(65536, 'a');
    Bytes out;
    CHECK_FALSE(encodePublish(p, ProtocolVersion::V311, out));
    CHECK(out.empty());
    p.topic.assign(65535, 'a');
    CHECK(encodePublish(p, ProtocolVersion::V311, out));
    PublishView view;
    CHECK(decode(out, ProtocolVersion::V311, &view) == reason::Success);
}
