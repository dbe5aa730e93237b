#pragma once
// Packet body decoders. Each takes the body of one complete packet (the bytes after the fixed
// header; `len` == Frame::remainingLength) and returns reason::Success or the MQTT 5 reason code
// the connection should be closed with (MalformedPacket, ProtocolError, TopicNameInvalid,
// TopicFilterInvalid, TopicAliasInvalid, ...). On 3.x the code is only a label for logs and
// metrics: the caller just closes. On failure the output is partially filled and must not be
// used (except ConnectPacket::version / protocolLevel, set as soon as they are known).
//
// Fixed-header flags are the caller's job (validFixedHeaderFlags), except for PUBLISH whose
// flags carry QoS / retain / dup and are decoded here.

#include <cstddef>
#include <cstdint>

#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Packets.h"

namespace moat::mqtt {

// Protocol name/level: "MQIsdp"+3 or "MQTT"+4/5, anything else UnsupportedProtocolVersion (the
// caller answers v3 CONNACK 1). Then MalformedPacket for reserved flag bit 0, will QoS 3, will
// QoS/retain without the will flag, password without username before v5, bad UTF-8, trailing
// bytes; TopicNameInvalid for a will topic that is empty or has wildcards; ProtocolError for
// property errors (see parseProperties) and Authentication Data without Method;
// ClientIdentifierNotValid for an empty client id in 3.1, or in 3.1.1 without clean session.
uint8_t decodeConnect(const uint8_t* body, size_t len, ConnectPacket& out);

// v3: exactly 2 bytes, return code 0..5. v5: reason valid for CONNACK, then properties.
// Session present with a refusal code is a ProtocolError (3.1.1 and 5).
// A CONNACK body in 3.1.1 form refusing the connection (two bytes, return code 1..5): what a
// server that does not speak MQTT 5 answers to a v5 CONNECT (MQTT 3.1.1 §3.1.2.2, e.g. aedes
// with return code 1). Decodable, so a v5 client may be given it as it is.
inline bool isV311ConnackRefusal(const uint8_t* body, size_t len) {
    return len == 2 && body[0] == 0 && body[1] >= 1 && body[1] <= 5;
}
uint8_t decodeConnack(const uint8_t* body, size_t len, ProtocolVersion version, ConnackPacket& out);

// Allocation-free. Body length is frame.remainingLength. MalformedPacket: QoS 3, DUP on QoS 0,
// truncation, bad UTF-8 topic, wildcard (3.x) or empty (3.x) topic; TopicNameInvalid for a
// wildcard in v5; ProtocolError for packet id 0 at QoS > 0, an empty v5 topic without alias,
// property errors; TopicAliasInvalid for alias 0.
uint8_t decodePublish(const Frame& frame, const uint8_t* body, ProtocolVersion version,
                      PublishView& out);

// Owned copy of a decoded view (properties parsed into the owned list).
PublishPacket toPublishPacket(const PublishView& view);

// ProtocolError for packet id 0, an empty list, retain handling 3, No Local on a shared
// subscription; MalformedPacket for reserved option bits, QoS 3, truncation, bad UTF-8;
// TopicFilterInvalid (v5) / MalformedPacket (3.x) for an invalid filter.
uint8_t decodeSubscribe(const uint8_t* body, size_t len, ProtocolVersion version,
                        SubscribePacket& out);
uint8_t decodeSuback(const uint8_t* body, size_t len, ProtocolVersion version, SubackPacket& out);
uint8_t decodeUnsubscribe(const uint8_t* body, size_t len, ProtocolVersion version,
                          UnsubscribePacket& out);
uint8_t decodeUnsuback(const uint8_t* body, size_t len, ProtocolVersion version,
                       UnsubackPacket& out);

// PUBACK / PUBREC / PUBREL / PUBCOMP (`type`). v3: exactly 2 bytes. v5: 2 bytes means reason 0,
// 3 bytes a reason without properties, more a reason and properties.
uint8_t decodeAck(PacketType type, const uint8_t* body, size_t len, ProtocolVersion version,
                  AckPacket& out);

// v3: must be empty. v5: empty means reason 0, 1 byte a reason, more a reason and properties.
uint8_t decodeDisconnect(const uint8_t* body, size_t len, ProtocolVersion version,
                         DisconnectPacket& out);

// v5 only (MalformedPacket on 3.x, where type 15 is reserved). Empty means reason 0.
uint8_t decodeAuth(const uint8_t* body, size_t len, ProtocolVersion version, AuthPacket& out);

// PINGREQ / PINGRESP: the body must be empty.
inline uint8_t decodeEmpty(size_t len) {
    return len == 0 ? reason::Success : reason::MalformedPacket;
}

}  // namespace moat::mqtt
