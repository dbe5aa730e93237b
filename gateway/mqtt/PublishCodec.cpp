// PUBLISH: the hot path. decodePublish allocates nothing.

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/PropertyWalker.h"
#include "gateway/mqtt/Utf8.h"
#include "gateway/mqtt/Wire.h"

namespace moat::mqtt {

uint8_t decodePublish(const Frame& frame, const uint8_t* body, ProtocolVersion version,
                      PublishView& out) {
    const uint8_t flags = frame.flags();
    out = PublishView{};
    out.qos = (flags >> 1) & 0x03;
    out.dup = flags & 0x08;
    out.retain = flags & 0x01;
    if (out.qos == 3) return reason::MalformedPacket;
    if (out.dup && out.qos == 0) return reason::MalformedPacket;  // MQTT-3.3.1-2

    wire::Reader r(body, frame.remainingLength);
    if (!r.prefixed(out.topic)) return reason::MalformedPacket;
    if (out.qos > 0) {
        if (!r.u16(out.packetId)) return reason::MalformedPacket;
        if (out.packetId == 0) return reason::ProtocolError;
    }
    const bool v5 = version == ProtocolVersion::V5;
    if (v5) {
        uint32_t plen = 0;
        if (!r.varint(plen) || plen > r.remaining()) return reason::MalformedPacket;
        out.properties = {r.pos(), plen};
        std::string_view skipped;
        r.bytes(plen, skipped);
        const uint8_t rc = detail::walkProperties(
            out.properties.data(), plen, PropertyScope::Publish, [&out](const PropertyView& v) {
                if (v.id == prop::TopicAlias) {
                    out.topicAlias = uint16_t(v.number);
                } else if (v.id == prop::UserProperty) {
                    if (out.userPropertyCount < UINT16_MAX) ++out.userPropertyCount;
                } else if (v.id == prop::SubscriptionIdentifier) {
                    out.hasSubscriptionId = true;
                } else if (v.id == prop::PayloadFormatIndicator) {
                    out.payloadUtf8 = v.number == 1;
                }
            });
        if (rc != reason::Success) return rc;
    }
    out.payload = r.rest();

    if (!validMqttUtf8(out.topic)) return reason::MalformedPacket;
    if (hasWildcard(out.topic)) {
        return v5 ? reason::TopicNameInvalid : reason::MalformedPacket;
    }
    if (out.topicAlias && *out.topicAlias == 0) return reason::TopicAliasInvalid;
    if (out.topic.empty()) {
        // v5: an empty topic is how a client uses an alias it set earlier (MQTT-3.3.2-8...).
        if (!v5) return reason::MalformedPacket;
        if (!out.topicAlias) return reason::ProtocolError;
    }
    return reason::Success;
}

PublishPacket toPublishPacket(const PublishView& view) {
    PublishPacket p;
    p.topic.assign(view.topic);
    p.payload.assign(view.payload);
    p.qos = view.qos;
    p.retain = view.retain;
    p.dup = view.dup;
    p.packetId = view.packetId;
    // The view was validated by decodePublish, so this cannot fail.
    decodeProperties(view.properties.data(), view.properties.size(), PropertyScope::Publish,
                     p.properties);
    return p;
}

bool encodePublish(const PublishPacket& p, ProtocolVersion version, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    out.reserve(out.size() + 2 + p.topic.size() + 2 + p.payload.size() + 16);
    bool ok = wire::putPrefixed(out, p.topic);
    if (p.qos > 0) wire::putU16(out, p.packetId);
    if (version == ProtocolVersion::V5) ok = ok && encodeProperties(p.properties, out);
    wire::putBytes(out, p.payload);
    uint8_t first = uint8_t(PacketType::Publish) << 4 | uint8_t((p.qos & 0x03) << 1);
    if (p.dup) first |= 0x08;
    if (p.retain) first |= 0x01;
    return wire::finishPacket(out, start, first, ok);
}

}  // namespace moat::mqtt
