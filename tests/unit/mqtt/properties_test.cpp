// MQTT 5 properties: every kind, the allowed-scope table, duplicates, value ranges, lengths,
// the inline/overflow PropertyList, and the encoder's refusals.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {
uint8_t parse(const Bytes& b, PropertyScope scope, PropertyList* outp = nullptr) {
    PropertyList list;
    const uint8_t rc = parseProperties(b.data(), b.size(), scope, list);
    if (outp) *outp = list;
    return rc;
}

// Every defined id with a value of the right kind.
std::vector<Property> oneOfEach() {
    std::vector<Property> out;
    for (int id = 0; id < 0x80; ++id) {
        switch (propertyKind(uint8_t(id))) {
            case PropertyKind::Byte:
                out.push_back(Property::integer(uint8_t(id), 1));
                break;
            case PropertyKind::TwoByte:
                out.push_back(Property::integer(uint8_t(id), 0x1234));
                break;
            case PropertyKind::FourByte:
                out.push_back(Property::integer(uint8_t(id), 0x12345678));
                break;
            case PropertyKind::Varint:
                out.push_back(Property::integer(uint8_t(id), 200000));
                break;
            case PropertyKind::Utf8:
            case PropertyKind::Binary:
                out.push_back(Property::string(uint8_t(id), "v\xC3\xA9"));
                break;
            case PropertyKind::Pair:
                out.push_back(Property::user("name", "value"));
                break;
            case PropertyKind::Unknown:
                break;
        }
    }
    return out;
}
}  // namespace

TEST_CASE("properties: the spec's table 2-4") {
    CHECK(oneOfEach().size() == 27);  // MQTT 5 defines 27 properties
    CHECK(propertyKind(prop::TopicAlias) == PropertyKind::TwoByte);
    CHECK(propertyKind(prop::SubscriptionIdentifier) == PropertyKind::Varint);
    CHECK(propertyKind(prop::CorrelationData) == PropertyKind::Binary);
    CHECK(propertyKind(prop::UserProperty) == PropertyKind::Pair);
    CHECK(propertyKind(0x00) == PropertyKind::Unknown);
    CHECK(propertyKind(0x2B) == PropertyKind::Unknown);
    CHECK(propertyKind(0xFF) == PropertyKind::Unknown);
    CHECK(std::string(propertyName(prop::TopicAlias)) == "topic_alias");
    CHECK(std::string(propertyName(0x7F)) == "unknown");
    CHECK(propertyAllowed(prop::WillDelayInterval, PropertyScope::Will));
    CHECK_FALSE(propertyAllowed(prop::WillDelayInterval, PropertyScope::Connect));
    CHECK(propertyAllowed(prop::TopicAlias, PropertyScope::Publish));
    CHECK_FALSE(propertyAllowed(prop::TopicAlias, PropertyScope::Will));
    CHECK(propertyAllowed(prop::UserProperty, PropertyScope::Auth));
    CHECK_FALSE(propertyAllowed(prop::UserProperty, PropertyScope::Pingreq));
    CHECK(propertyAllowed(prop::ServerReference, PropertyScope::Disconnect));
    CHECK_FALSE(propertyAllowed(prop::ReasonString, PropertyScope::Publish));
    CHECK_FALSE(propertyAllowed(prop::ReasonString, PropertyScope::Connect));
    CHECK(propertyAllowed(prop::SessionExpiryInterval, PropertyScope::Disconnect));
    CHECK_FALSE(propertyAllowed(prop::SubscriptionIdentifier, PropertyScope::Unsubscribe));
}

TEST_CASE("properties: each one allowed exactly where the table says") {
    for (const Property& p : oneOfEach()) {
        Bytes block;
        REQUIRE(encodeProperties({p}, block));
        const Bytes raw(block.begin() + long(block.size() - propertiesSize({p})), block.end());
        for (int s = 1; s <= 16; ++s) {
            const PropertyScope scope = PropertyScope(s);
            CAPTURE(propertyName(p.id), s);
            std::vector<Property> out;
            const uint8_t rc = decodeProperties(raw.data(), raw.size(), scope, out);
            if (propertyAllowed(p.id, scope)) {
                REQUIRE(rc == reason::Success);
                REQUIRE(out.size() == 1);
                CHECK(out[0] == p);
            } else {
                CHECK(rc == reason::ProtocolError);
            }
        }
    }
}

TEST_CASE("properties: duplicates") {
    for (const Property& p : oneOfEach()) {
        for (int s = 1; s <= 16; ++s) {
            const PropertyScope scope = PropertyScope(s);
            if (!propertyAllowed(p.id, scope)) continue;
            Bytes block;
            REQUIRE(encodeProperties({p, p}, block));
            const Bytes raw(block.begin() + 1, block.end());
            CAPTURE(propertyName(p.id), s);
            const bool repeatable =
                p.id == prop::UserProperty ||
                (p.id == prop::SubscriptionIdentifier && scope == PropertyScope::Publish);
            CHECK(parse(raw, scope) == (repeatable ? reason::Success : reason::ProtocolError));
        }
    }
}

TEST_CASE("properties: value ranges") {
    const struct {
        Bytes raw;
        PropertyScope scope;
        uint8_t rc;
    } cases[] = {
        {hex("01 01"), PropertyScope::Publish, reason::Success},
        {hex("01 02"), PropertyScope::Publish, reason::ProtocolError},
        {hex("17 FF"), PropertyScope::Connect, reason::ProtocolError},
        {hex("19 02"), PropertyScope::Connect, reason::ProtocolError},
        {hex("24 02"), PropertyScope::Connack, reason::ProtocolError},
        {hex("25 02"), PropertyScope::Connack, reason::ProtocolError},
        {hex("28 02"), PropertyScope::Connack, reason::ProtocolError},
        {hex("29 02"), PropertyScope::Connack, reason::ProtocolError},
        {hex("2A 02"), PropertyScope::Connack, reason::ProtocolError},
        {hex("21 0000"), PropertyScope::Connack, reason::ProtocolError},
        {hex("27 00000000"), PropertyScope::Connect, reason::ProtocolError},
        {hex("0B 00"), PropertyScope::Subscribe, reason::ProtocolError},
        {hex("0B FF FF FF 7F"), PropertyScope::Subscribe, reason::Success},
        {hex("0B FF FF FF FF 01"), PropertyScope::Subscribe, reason::MalformedPacket},
        {hex("0B 80 80 00"), PropertyScope::Subscribe, reason::MalformedPacket},
        {hex("22 0000"), PropertyScope::Connect, reason::Success},  // 0 = no aliases
        {hex("13 0000"), PropertyScope::Connack, reason::Success},
    };
    for (const auto& c : cases) {
        CAPTURE(c.raw);
        CHECK(parse(c.raw, c.scope) == c.rc);
    }
}

TEST_CASE("properties: malformed encodings") {
    const PropertyScope s = PropertyScope::Publish;
    CHECK(parse(hex(""), s) == reason::Success);
    CHECK(parse(hex("00"), s) == reason::MalformedPacket);        // id 0
    CHECK(parse(hex("2B 00"), s) == reason::MalformedPacket);     // first undefined id
    CHECK(parse(hex("80 01 01"), s) == reason::MalformedPacket);  // multi-byte id
    CHECK(parse(hex("01"), s) == reason::MalformedPacket);
    CHECK(parse(hex("23 00"), s) == reason::MalformedPacket);
    CHECK(parse(hex("02 000000"), s) == reason::MalformedPacket);
    CHECK(parse(hex("0B 80"), s) == reason::MalformedPacket);
    CHECK(parse(hex("03 00"), s) == reason::MalformedPacket);
    CHECK(parse(hex("03 0002 61"), s) == reason::MalformedPacket);
    CHECK(parse(hex("03 0001 00"), s) == reason::MalformedPacket);  // U+0000
    CHECK(parse(hex("03 0001 80"), s) == reason::MalformedPacket);  // lone continuation
    CHECK(parse(hex("09 0001 00"), s) == reason::Success);          // binary: anything
    CHECK(parse(hex("26 0001 61"), s) == reason::MalformedPacket);  // pair without value
    CHECK(parse(hex("26 0001 FF 0000"), s) == reason::MalformedPacket);
    CHECK(parse(hex("26 0000 0001 FF"), s) == reason::MalformedPacket);
    CHECK(parse(hex("26 0000 0000"), s) == reason::Success);  // empty name and value
    // Every truncation of a valid block with every kind.
    std::vector<Property> all;
    for (const Property& p : oneOfEach()) {
        if (propertyAllowed(p.id, s)) all.push_back(p);
    }
    Bytes block;
    REQUIRE(encodeProperties(all, block));
    const Bytes raw(block.begin() + 1, block.end());
    REQUIRE(parse(raw, s) == reason::Success);
    // A cut is a failure unless it falls exactly between two properties.
    std::vector<size_t> boundaries = {0};
    for (const Property& p : all) {
        Bytes one;
        encodeProperties({p}, one);
        boundaries.push_back(boundaries.back() + one.size() - 1);
    }
    for (size_t n = 0; n < raw.size(); ++n) {
        const bool boundary =
            std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
        CAPTURE(n);
        PropertyList list;
        const uint8_t rc = parseProperties(raw.data(), n, s, list);
        CHECK((rc == reason::Success) == boundary);
    }
}

TEST_CASE("properties: PropertyList keeps order past its inline capacity") {
    std::vector<Property> many;
    for (int i = 0; i < 40; ++i) many.push_back(Property::user("k" + std::to_string(i), "v"));
    many.push_back(Property::integer(prop::TopicAlias, 9));
    Bytes block;
    REQUIRE(encodeProperties(many, block));
    const size_t used = block.size() - propertiesSize(many);
    const Bytes raw(block.begin() + long(used), block.end());
    PropertyList list;
    REQUIRE(parse(raw, PropertyScope::Publish, &list) == reason::Success);
    REQUIRE(list.size() == 41);
    CHECK(list.userPropertyCount() == 40);
    for (size_t i = 0; i < 40; ++i) CHECK(list[i].str == "k" + std::to_string(i));
    REQUIRE(list.find(prop::TopicAlias) != nullptr);
    CHECK(list.find(prop::TopicAlias)->number == 9);
    CHECK(list.find(prop::ContentType) == nullptr);
    // Reuse after clear.
    REQUIRE(parse(hex("23 0001"), PropertyScope::Publish, &list) == reason::Success);
    CHECK(list.size() == 1);
    CHECK(list.userPropertyCount() == 0);
}

TEST_CASE("properties: encoder") {
    CHECK(propertiesSize({}) == 0);
    Bytes out{9};
    REQUIRE(encodeProperties({}, out));
    CHECK(out == Bytes{9, 0});
    const std::vector<Property> one = {Property::integer(prop::ReceiveMaximum, 10)};
    CHECK(propertiesSize(one) == 3);
    out.clear();
    REQUIRE(encodeProperties(one, out));
    CHECK(out == hex("03 21 000A"));
    // Refusals leave the output untouched.
    out = {7};
    CHECK_FALSE(encodeProperties({Property::integer(0x00, 1)}, out));
    CHECK_FALSE(encodeProperties({Property::integer(0x7F, 1)}, out));
    CHECK_FALSE(
        encodeProperties({Property::string(prop::ContentType, std::string(65536, 'a'))}, out));
    CHECK_FALSE(encodeProperties({Property::user("a", std::string(65536, 'b'))}, out));
    CHECK_FALSE(
        encodeProperties({Property::integer(prop::SubscriptionIdentifier, 268435456)}, out));
    CHECK(out == Bytes{7});
    // A block over 127 bytes gets a two-byte length.
    const std::vector<Property> big = {Property::string(prop::ReasonString, std::string(200, 'r'))};
    out.clear();
    REQUIRE(encodeProperties(big, out));
    CHECK(out.size() == 2 + 203);
    CHECK(out[0] == (203 & 0x7F | 0x80));
    CHECK(out[1] == 1);
    // find helpers
    CHECK(findNumber(one, prop::ReceiveMaximum) == 10u);
    CHECK_FALSE(findNumber(one, prop::TopicAlias));
    CHECK(findString(big, prop::ReasonString) == std::string(200, 'r'));
    CHECK(findProperty(big, prop::ContentType) == nullptr);
}
