// CONNECT: round trips for every version (all v5 properties, will properties), known answers,
// and every malformed case with the reason code the connection is closed with.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {

ConnectPacket fullConnect(ProtocolVersion v) {
    ConnectPacket p;
    p.version = v;
    p.protocolLevel = uint8_t(v);
    p.protocolName = v == ProtocolVersion::V31 ? "MQIsdp" : "MQTT";
    p.cleanStart = false;
    p.keepAlive = 300;
    p.clientId = "device-\xC3\xA9-1";
    p.willFlag = true;
    p.willQos = 2;
    p.willRetain = true;
    p.willTopic = "devices/d1/status";
    p.willPayload = std::string("off\0line", 8);
    p.username = "user";
    p.password = std::string("p\0\xFFw", 4);  // binary data, not UTF-8
    if (v == ProtocolVersion::V5) {
        p.properties = {
            Property::integer(prop::SessionExpiryInterval, 3600),
            Property::integer(prop::ReceiveMaximum, 20),
            Property::integer(prop::MaximumPacketSize, 65536),
            Property::integer(prop::TopicAliasMaximum, 10),
            Property::integer(prop::RequestResponseInformation, 1),
            Property::integer(prop::RequestProblemInformation, 0),
            Property::user("k", "v1"),
            Property::user("k", "v2"),
            Property::string(prop::AuthenticationMethod, "SCRAM-SHA-1"),
            Property::string(prop::AuthenticationData, std::string("\x00\x01", 2)),
        };
        p.willProperties = {
            Property::integer(prop::WillDelayInterval, 30),
            Property::integer(prop::PayloadFormatIndicator, 1),
            Property::integer(prop::MessageExpiryInterval, 600),
            Property::string(prop::ContentType, "text/plain"),
            Property::string(prop::ResponseTopic, "replies/d1"),
            Property::string(prop::CorrelationData, std::string("\x00\xFF", 2)),
            Property::user("origin", "will"),
        };
    }
    return p;
}

// A v3.1.1/v5 CONNECT body: name, level, flags, keepalive, [props], client id, then `tail`.
Builder connectBody(uint8_t level, uint8_t flags, const char* clientId = "c",
                    const Bytes& props = {}) {
    Builder b;
    b.str(level == 3 ? "MQIsdp" : "MQTT").u8(level).u8(flags).u16(60);
    if (level == 5) b.props(props);
    b.str(clientId);
    return b;
}

uint8_t decodeBody(const Builder& b, ConnectPacket* outp = nullptr) {
    ConnectPacket p;
    const uint8_t rc = decodeConnect(b.b.data(), b.b.size(), p);
    if (outp) *outp = p;
    return rc;
}

}  // namespace

TEST_CASE("CONNECT round trip: minimal, every version") {
    for (ProtocolVersion v : kAllVersions) {
        ConnectPacket p;
        p.version = v;
        p.protocolLevel = uint8_t(v);
        p.protocolName = v == ProtocolVersion::V31 ? "MQIsdp" : "MQTT";
        p.clientId = "c1";
        const Bytes wire = encodeConnect(p);
        REQUIRE(!wire.empty());
        ConnectPacket back;
        REQUIRE(decodeConnect(bodyOf(wire), frameOf(wire).remainingLength, back) ==
                reason::Success);
        CHECK(back == p);
        requireByteRoundTrip(wire, v);
    }
}

TEST_CASE("CONNECT round trip: will, credentials and every v5 property") {
    for (ProtocolVersion v : kAllVersions) {
        CAPTURE(versionName(v));
        const ConnectPacket p = fullConnect(v);
        const Bytes wire = encodeConnect(p);
        REQUIRE(!wire.empty());
        CHECK(validFixedHeaderFlags(frameOf(wire), v));
        ConnectPacket back;
        REQUIRE(decodeConnect(bodyOf(wire), frameOf(wire).remainingLength, back) ==
                reason::Success);
        CHECK(back == p);
        requireByteRoundTrip(wire, v);
        if (v == ProtocolVersion::V5) {
            CHECK(back.sessionExpiry() == 3600u);
            CHECK(back.receiveMaximum() == 20u);
            CHECK(back.maximumPacketSize() == 65536u);
            CHECK(back.topicAliasMaximum() == 10u);
            CHECK(back.authenticationMethod() == "SCRAM-SHA-1");
            CHECK(back.authenticationData() == std::string("\x00\x01", 2));
        }
    }
}

TEST_CASE("CONNECT known answer (3.1.1, spec example layout)") {
    // MQTT level 4, clean session, keepalive 10, client id "abc", username "u", password "p".
    const Bytes wire = hex("10 15 0004 4D515454 04 C2 000A 0003 616263 0001 75 0001 70");
    ConnectPacket p;
    REQUIRE(decodeConnect(bodyOf(wire), frameOf(wire).remainingLength, p) == reason::Success);
    CHECK(p.version == ProtocolVersion::V311);
    CHECK(p.cleanStart);
    CHECK(p.keepAlive == 10);
    CHECK(p.clientId == "abc");
    CHECK(p.username == "u");
    CHECK(p.password == "p");
    CHECK_FALSE(p.willFlag);
    requireByteRoundTrip(wire, ProtocolVersion::V311);
}

TEST_CASE("CONNECT: unsupported protocol name or level") {
    const struct {
        const char* name;
        uint8_t level;
    } cases[] = {{"MQTT", 3},   {"MQTT", 6}, {"MQTT", 0}, {"MQIsdp", 4},
                 {"MQIsdp", 5}, {"mqtt", 4}, {"MQTX", 4}, {"", 4}};
    for (const auto& c : cases) {
        CAPTURE(c.name, int(c.level));
        Builder b;
        b.str(c.name).u8(c.level).u8(0x02).u16(60).str("c");
        ConnectPacket p;
        CHECK(decodeBody(b, &p) == reason::UnsupportedProtocolVersion);
        CHECK(p.protocolLevel == c.level);  // known so the caller can answer v3 CONNACK 1
    }
}

TEST_CASE("CONNECT: malformed connect flags") {
    for (uint8_t level : {3, 4, 5}) {
        CAPTURE(int(level));
        // reserved bit 0
        CHECK(decodeBody(connectBody(level, 0x03)) == reason::MalformedPacket);
        // will QoS 3 (with the will flag)
        CHECK(decodeBody(connectBody(level, 0x1E)) == reason::MalformedPacket);
        // will QoS without the will flag
        CHECK(decodeBody(connectBody(level, 0x0A)) == reason::MalformedPacket);
        CHECK(decodeBody(connectBody(level, 0x12)) == reason::MalformedPacket);
        // will retain without the will flag
        CHECK(decodeBody(connectBody(level, 0x22)) == reason::MalformedPacket);
    }
    // password without username: malformed before v5, allowed in v5
    for (uint8_t level : {3, 4}) {
        CHECK(decodeBody(connectBody(level, 0x42).str("pw")) == reason::MalformedPacket);
    }
    ConnectPacket p;
    REQUIRE(decodeBody(connectBody(5, 0x42).str("pw"), &p) == reason::Success);
    CHECK_FALSE(p.username);
    CHECK(p.password == "pw");
}

TEST_CASE("CONNECT: every truncation is malformed") {
    for (ProtocolVersion v : kAllVersions) {
        CAPTURE(versionName(v));
        const Bytes wire = encodeConnect(fullConnect(v));
        const Frame f = frameOf(wire);
        const uint8_t* body = wire.data() + f.headerSize;
        for (size_t n = 0; n < f.remainingLength; ++n) {
            CAPTURE(n);
            ConnectPacket p;
            CHECK(decodeConnect(body, n, p) == reason::MalformedPacket);
        }
    }
}

TEST_CASE("CONNECT: trailing bytes are malformed") {
    for (ProtocolVersion v : kAllVersions) {
        Bytes wire = encodeConnect(fullConnect(v));
        const Frame f = frameOf(wire);
        Bytes body(wire.begin() + f.headerSize, wire.end());
        body.push_back(0);
        ConnectPacket p;
        CHECK(decodeConnect(body.data(), body.size(), p) == reason::MalformedPacket);
    }
}

TEST_CASE("CONNECT: strings must be MQTT UTF-8") {
    const char* bad[] = {"a\0b", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                         "\xFF", "\xE2\x82"};
    const size_t badLen[] = {3, 2, 3, 4, 1, 2};
    for (uint8_t level : {3, 4, 5}) {
        for (size_t i = 0; i < std::size(bad); ++i) {
            const std::string s(bad[i], badLen[i]);
            CAPTURE(int(level), i);
            // client id
            Builder b;
            b.str(level == 3 ? "MQIsdp" : "MQTT").u8(level).u8(0x02).u16(60);
            if (level == 5) b.props({});
            b.str(s);
            CHECK(decodeBody(b) == reason::MalformedPacket);
            // username
            CHECK(decodeBody(connectBody(level, 0x82).str(s)) == reason::MalformedPacket);
            // will topic
            Builder w = connectBody(level, 0x06);
            if (level == 5) w.props({});
            w.str(s).str("payload");
            CHECK(decodeBody(w) == reason::MalformedPacket);
        }
        // The password is binary data: anything goes.
        CHECK(decodeBody(connectBody(level, 0xC2).str("u").str(std::string("\0\xFF", 2))) ==
              reason::Success);
    }
}

TEST_CASE("CONNECT: will topic must be a topic name") {
    for (uint8_t level : {3, 4, 5}) {
        for (const char* topic : {"", "a/+", "#", "a/#", "+"}) {
            CAPTURE(int(level), topic);
            Builder w = connectBody(level, 0x06);
            if (level == 5) w.props({});
            w.str(topic).str("x");
            CHECK(decodeBody(w) == reason::TopicNameInvalid);
        }
    }
}

TEST_CASE("CONNECT: empty client id rules per version") {
    CHECK(decodeBody(connectBody(3, 0x02, "")) == reason::ClientIdentifierNotValid);
    CHECK(decodeBody(connectBody(4, 0x00, "")) == reason::ClientIdentifierNotValid);
    CHECK(decodeBody(connectBody(4, 0x02, "")) == reason::Success);
    CHECK(decodeBody(connectBody(5, 0x00, "")) == reason::Success);
    CHECK(decodeBody(connectBody(5, 0x02, "")) == reason::Success);
}

TEST_CASE("CONNECT v5: property errors") {
    const struct {
        const char* what;
        Bytes props;
        uint8_t rc;
    } cases[] = {
        {"unknown id", hex("7F 00"), reason::MalformedPacket},
        {"id encoded as a 2-byte varint", hex("91 00 00000000"), reason::MalformedPacket},
        {"not allowed in CONNECT (topic alias)", hex("23 0001"), reason::ProtocolError},
        {"not allowed in CONNECT (will delay)", hex("18 00000001"), reason::ProtocolError},
        {"not allowed in CONNECT (reason string)", hex("1F 0001 61"), reason::ProtocolError},
        {"duplicate session expiry", hex("11 00000001 11 00000002"), reason::ProtocolError},
        {"duplicate receive maximum", hex("21 0001 21 0001"), reason::ProtocolError},
        {"duplicate auth method", hex("15 0001 61 15 0001 61"), reason::ProtocolError},
        {"receive maximum 0", hex("21 0000"), reason::ProtocolError},
        {"maximum packet size 0", hex("27 00000000"), reason::ProtocolError},
        {"request problem information 2", hex("17 02"), reason::ProtocolError},
        {"request response information 2", hex("19 02"), reason::ProtocolError},
        {"auth data without method", hex("16 0001 00"), reason::ProtocolError},
        {"truncated four-byte value", hex("11 0000"), reason::MalformedPacket},
        {"truncated string", hex("15 0005 61"), reason::MalformedPacket},
        {"user property without value", hex("26 0001 61"), reason::MalformedPacket},
        {"user property bad UTF-8", hex("26 0001 61 0001 FF"), reason::MalformedPacket},
        {"auth method with NUL", hex("15 0001 00"), reason::MalformedPacket},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        CHECK(decodeBody(connectBody(5, 0x02, "c", c.props)) == c.rc);
    }
    // Repeated user properties are fine.
    ConnectPacket p;
    REQUIRE(decodeBody(connectBody(5, 0x02, "c", hex("26 0001 61 0000 26 0001 61 0000")), &p) ==
            reason::Success);
    CHECK(p.properties.size() == 2);
}

TEST_CASE("CONNECT v5: property block length that disagrees with its contents") {
    // Declared longer than the packet.
    Builder a;
    a.str("MQTT").u8(5).u8(0x02).u16(60).raw(hex("10")).raw(hex("11 00000001")).str("c");
    CHECK(decodeBody(a) == reason::MalformedPacket);
    // Declared shorter than the property it holds: the value crosses the block's end.
    Builder b;
    b.str("MQTT").u8(5).u8(0x02).u16(60).raw(hex("03 11 00000001")).str("c");
    CHECK(decodeBody(b) == reason::MalformedPacket);
    // Non-minimal varint length.
    Builder c;
    c.str("MQTT").u8(5).u8(0x02).u16(60).raw(hex("80 00")).str("c");
    CHECK(decodeBody(c) == reason::MalformedPacket);
}

TEST_CASE("CONNECT v5: will property errors") {
    const struct {
        const char* what;
        Bytes props;
        uint8_t rc;
    } cases[] = {
        {"session expiry in will", hex("11 00000001"), reason::ProtocolError},
        {"topic alias in will", hex("23 0001"), reason::ProtocolError},
        {"subscription id in will", hex("0B 01"), reason::ProtocolError},
        {"duplicate will delay", hex("18 00000001 18 00000001"), reason::ProtocolError},
        {"payload format 2", hex("01 02"), reason::ProtocolError},
        {"content type bad UTF-8", hex("03 0001 C0"), reason::MalformedPacket},
        {"truncated", hex("02 0000"), reason::MalformedPacket},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Builder w = connectBody(5, 0x06);
        w.props(c.props).str("t").str("x");
        CHECK(decodeBody(w) == c.rc);
    }
}

TEST_CASE("CONNECT encoder refuses what does not fit") {
    ConnectPacket p;
    p.clientId.assign(70000, 'a');
    Bytes out{1, 2, 3};
    CHECK_FALSE(encodeConnect(p, out));
    CHECK(out == Bytes{1, 2, 3});
    p.clientId = "c";
    p.version = ProtocolVersion::V5;
    p.properties = {Property::integer(0x7F, 1)};
    CHECK_FALSE(encodeConnect(p, out));
    CHECK(out == Bytes{1, 2, 3});
}
