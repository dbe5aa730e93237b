// Fuzzes the CONNECT decoder and the v5 property parser directly.
// Input: byte 0 picks a prefix (0: none, the input is the whole body; 1: MQIsdp/3; 2: MQTT/4;
// 3: MQTT/5) so the fuzzer spends its time past the protocol name; the rest follows.
// Invariants: an accepted CONNECT satisfies every rule the decoder promises, re-encodes,
// and decodes back to itself; parseProperties and decodeProperties agree for every scope.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Properties.h"
#include "gateway/mqtt/Utf8.h"

using namespace moat::mqtt;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void checkProperties(const std::vector<Property>& props, PropertyScope scope) {
    for (const Property& p : props) {
        check(propertyAllowed(p.id, scope));
        const PropertyKind k = propertyKind(p.id);
        if (k == PropertyKind::Utf8 || k == PropertyKind::Pair) check(validMqttUtf8(p.str));
        if (k == PropertyKind::Pair) check(validMqttUtf8(p.str2));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static const std::vector<uint8_t> kPrefixes[] = {
        {},
        {0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3},
        {0, 4, 'M', 'Q', 'T', 'T', 4},
        {0, 4, 'M', 'Q', 'T', 'T', 5},
    };
    std::vector<uint8_t> body = kPrefixes[data[0] & 3];
    body.insert(body.end(), data + 1, data + size);

    ConnectPacket p;
    const uint8_t rc = decodeConnect(body.data(), body.size(), p);
    if (rc == reason::Success) {
        check(validMqttUtf8(p.clientId));
        if (p.username) check(validMqttUtf8(*p.username));
        if (p.willFlag) {
            check(p.willQos <= 2 && validTopicName(p.willTopic));
        } else {
            check(p.willQos == 0 && !p.willRetain && p.willTopic.empty());
        }
        if (p.version != ProtocolVersion::V5) {
            check(p.properties.empty() && p.willProperties.empty());
            if (p.password) check(p.username.has_value());
        }
        checkProperties(p.properties, PropertyScope::Connect);
        checkProperties(p.willProperties, PropertyScope::Will);
        if (p.authenticationData()) check(p.authenticationMethod().has_value());

        Bytes wire;
        check(encodeConnect(p, wire));
        Frame f;
        check(parseFrame(wire.data(), wire.size(), f) == FrameStatus::Ok);
        check(f.totalSize() == wire.size() && validFixedHeaderFlags(f, p.version));
        // The body is canonical already: the encoder reproduces it byte for byte.
        check(f.remainingLength == body.size());
        check(std::equal(body.begin(), body.end(), wire.begin() + f.headerSize));
        ConnectPacket again;
        check(decodeConnect(wire.data() + f.headerSize, f.remainingLength, again) ==
              reason::Success);
        check(again == p);
    } else if (rc == reason::UnsupportedProtocolVersion) {
        check(body.size() >= 3);
    }

    // The properties parser on the raw input, every scope: the borrowed and owned forms agree.
    const uint8_t* raw = data + 1;
    const size_t rawLen = size - 1;
    for (int s = 1; s <= 16; ++s) {
        const auto scope = PropertyScope(s);
        PropertyList list;
        std::vector<Property> owned;
        const uint8_t a = parseProperties(raw, rawLen, scope, list);
        const uint8_t b = decodeProperties(raw, rawLen, scope, owned);
        check(a == b);
        if (a != reason::Success) continue;
        check(list.size() == owned.size());
        size_t users = 0;
        for (size_t i = 0; i < list.size(); ++i) {
            check(Property::fromView(list[i]) == owned[i]);
            users += owned[i].id == prop::UserProperty;
        }
        check(users == list.userPropertyCount());
        checkProperties(owned, scope);
        // Re-encoding gives back the input exactly (there is one encoding per value, except a
        // non-minimal varint which the parser rejects).
        Bytes enc;
        check(encodeProperties(owned, enc));
        check(propertiesSize(owned) == rawLen);
        check(std::equal(raw, raw + rawLen, enc.end() - long(rawLen)));
    }
    return 0;
}
