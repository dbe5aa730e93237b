// Fuzzes the MQTT codec the way the gateway drives it: a byte stream cut into frames by
// parseFrame, each frame's flags checked, its body decoded by packet type. Every packet the
// decoder accepts must re-encode, and the re-encoding must decode to the same packet
// (decode . encode . decode == decode), with a frame that agrees on its own length.
// Input: byte 0 selects the protocol version (mod 3), the rest is the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Utf8.h"

using namespace moat::mqtt;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

// Frames `wire` (one complete packet) and returns its body.
const uint8_t* frameBody(const Bytes& wire, Frame& f) {
    check(parseFrame(wire.data(), wire.size(), f) == FrameStatus::Ok);
    check(f.totalSize() == wire.size());
    return wire.data() + f.headerSize;
}

template <class Packet, class Decode>
void reDecode(const Bytes& wire, const Packet& first, ProtocolVersion v, Decode decode) {
    check(!wire.empty());
    Frame f;
    const uint8_t* body = frameBody(wire, f);
    check(validFixedHeaderFlags(f, v));
    Packet again;
    check(decode(f, body, again) == reason::Success);
    check(again == first);
}

void oneFrame(const Frame& f, const uint8_t* body, ProtocolVersion v) {
    if (!validFixedHeaderFlags(f, v)) return;
    const size_t len = f.remainingLength;
    switch (f.type()) {
        case PacketType::Connect: {
            ConnectPacket p;
            if (decodeConnect(body, len, p) != reason::Success) return;
            check(p.clientId.size() <= 0xFFFF && validMqttUtf8(p.clientId));
            if (p.willFlag) check(validTopicName(p.willTopic) && p.willQos < 3);
            reDecode(encodeConnect(p), p, p.version,
                     [](const Frame& g, const uint8_t* b, ConnectPacket& out) {
                         return decodeConnect(b, g.remainingLength, out);
                     });
            break;
        }
        case PacketType::Connack: {
            ConnackPacket p;
            if (decodeConnack(body, len, v, p) != reason::Success) return;
            reDecode(encodeConnack(v, p.sessionPresent, p.code, p.properties), p, v,
                     [v](const Frame& g, const uint8_t* b, ConnackPacket& out) {
                         return decodeConnack(b, g.remainingLength, v, out);
                     });
            break;
        }
        case PacketType::Publish: {
            PublishView view;
            if (decodePublish(f, body, v, view) != reason::Success) return;
            // Every view lies inside the body.
            const char* lo = reinterpret_cast<const char*>(body);
            const char* hi = lo + len;
            check(view.topic.data() >= lo && view.topic.data() + view.topic.size() <= hi);
            check(view.payload.data() >= lo && view.payload.data() + view.payload.size() == hi);
            check(view.qos < 3 && (view.qos == 0) == (view.packetId == 0));
            if (view.topic.empty()) {
                check(v == ProtocolVersion::V5 && view.topicAlias && *view.topicAlias != 0);
            } else {
                check(validTopicName(view.topic));
            }
            const PublishPacket p = toPublishPacket(view);
            reDecode(encodePublish(p, v), p, v,
                     [v](const Frame& g, const uint8_t* b, PublishPacket& out) {
                         PublishView again;
                         const uint8_t rc = decodePublish(g, b, v, again);
                         if (rc == reason::Success) out = toPublishPacket(again);
                         return rc;
                     });
            break;
        }
        case PacketType::Puback:
        case PacketType::Pubrec:
        case PacketType::Pubrel:
        case PacketType::Pubcomp: {
            AckPacket p;
            if (decodeAck(f.type(), body, len, v, p) != reason::Success) return;
            check(p.packetId != 0);
            reDecode(encodeAck(p, v), p, v, [v](const Frame& g, const uint8_t* b, AckPacket& out) {
                return decodeAck(g.type(), b, g.remainingLength, v, out);
            });
            break;
        }
        case PacketType::Subscribe: {
            SubscribePacket p;
            if (decodeSubscribe(body, len, v, p) != reason::Success) return;
            check(!p.subscriptions.empty() && p.packetId != 0);
            for (const auto& s : p.subscriptions) check(validTopicFilter(s.filter));
            reDecode(encodeSubscribe(p, v), p, v,
                     [v](const Frame& g, const uint8_t* b, SubscribePacket& out) {
                         return decodeSubscribe(b, g.remainingLength, v, out);
                     });
            break;
        }
        case PacketType::Suback: {
            SubackPacket p;
            if (decodeSuback(body, len, v, p) != reason::Success) return;
            reDecode(encodeSuback(p, v), p, v,
                     [v](const Frame& g, const uint8_t* b, SubackPacket& out) {
                         return decodeSuback(b, g.remainingLength, v, out);
                     });
            break;
        }
        case PacketType::Unsubscribe: {
            UnsubscribePacket p;
            if (decodeUnsubscribe(body, len, v, p) != reason::Success) return;
            for (const auto& s : p.filters) check(validTopicFilter(s));
            reDecode(encodeUnsubscribe(p, v), p, v,
                     [v](const Frame& g, const uint8_t* b, UnsubscribePacket& out) {
                         return decodeUnsubscribe(b, g.remainingLength, v, out);
                     });
            break;
        }
        case PacketType::Unsuback: {
            UnsubackPacket p;
            if (decodeUnsuback(body, len, v, p) != reason::Success) return;
            reDecode(encodeUnsuback(p, v), p, v,
                     [v](const Frame& g, const uint8_t* b, UnsubackPacket& out) {
                         return decodeUnsuback(b, g.remainingLength, v, out);
                     });
            break;
        }
        case PacketType::Pingreq:
        case PacketType::Pingresp:
            if (decodeEmpty(len) == reason::Success) check(len == 0);
            break;
        case PacketType::Disconnect: {
            DisconnectPacket p;
            if (decodeDisconnect(body, len, v, p) != reason::Success) return;
            reDecode(encodeDisconnect(v, p.reason, p.properties), p, v,
                     [v](const Frame& g, const uint8_t* b, DisconnectPacket& out) {
                         return decodeDisconnect(b, g.remainingLength, v, out);
                     });
            break;
        }
        case PacketType::Auth: {
            AuthPacket p;
            if (decodeAuth(body, len, v, p) != reason::Success) return;
            check(v == ProtocolVersion::V5);
            reDecode(encodeAuth(p), p, v, [v](const Frame& g, const uint8_t* b, AuthPacket& out) {
                return decodeAuth(b, g.remainingLength, v, out);
            });
            break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static constexpr ProtocolVersion kVersions[] = {ProtocolVersion::V31, ProtocolVersion::V311,
                                                    ProtocolVersion::V5};
    const ProtocolVersion v = kVersions[data[0] % 3];
    const uint8_t* p = data + 1;
    size_t left = size - 1;
    while (left > 0) {
        Frame f;
        const FrameStatus s = parseFrame(p, left, f);
        if (s != FrameStatus::Ok) {
            // NeedMore must be a strict prefix of a header; Malformed is final.
            if (s == FrameStatus::NeedMore) check(left < 5);
            break;
        }
        check(f.headerSize >= 2 && f.headerSize <= 5 && f.remainingLength <= kMaxRemainingLength);
        // Re-encoding the length gives back the same header size (minimal encoding).
        uint8_t enc[4];
        check(encodeRemainingLength(f.remainingLength, enc) == size_t(f.headerSize - 1));
        if (f.totalSize() > left) {
            // A truncated body: the decoders see exactly what arrived, as if length lied.
            Frame cut = f;
            cut.remainingLength = uint32_t(left - f.headerSize);
            oneFrame(cut, p + f.headerSize, v);
            break;
        }
        oneFrame(f, p + f.headerSize, v);
        p += f.totalSize();
        left -= f.totalSize();
    }
    return 0;
}
