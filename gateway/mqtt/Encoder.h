#pragma once
// Packet encoders: each appends one complete packet (fixed header included) to `out` and returns
// false, leaving `out` unchanged, if the packet cannot be encoded (a string over 65535 bytes, an
// unknown property id, a body over the 256 MiB limit). The vector-returning forms return an
// empty vector in that case. Encoders trust their input otherwise: the gateway builds these
// packets itself or from packets the decoder accepted.

#include <cstdint>
#include <vector>

#include "gateway/mqtt/Packets.h"

namespace moat::mqtt {

using Bytes = std::vector<uint8_t>;

// Uses `version` for the protocol name/level; `protocolName`/`protocolLevel` are ignored.
bool encodeConnect(const ConnectPacket& p, Bytes& out);
// `code`: the v5 reason code, or the v3 return code. Properties are ignored before v5.
bool encodeConnack(ProtocolVersion version, bool sessionPresent, uint8_t code,
                   const std::vector<Property>& props, Bytes& out);
bool encodePublish(const PublishPacket& p, ProtocolVersion version, Bytes& out);
bool encodeSubscribe(const SubscribePacket& p, ProtocolVersion version, Bytes& out);
bool encodeSuback(const SubackPacket& p, ProtocolVersion version, Bytes& out);
bool encodeUnsubscribe(const UnsubscribePacket& p, ProtocolVersion version, Bytes& out);
bool encodeUnsuback(const UnsubackPacket& p, ProtocolVersion version, Bytes& out);
// v5 uses the shortest form: 2 bytes for reason 0 without properties, 3 without properties.
bool encodeAck(const AckPacket& p, ProtocolVersion version, Bytes& out);
// v3: an empty DISCONNECT. v5: empty for reason 0 without properties.
bool encodeDisconnect(ProtocolVersion version, uint8_t reason, const std::vector<Property>& props,
                      Bytes& out);
bool encodeAuth(const AuthPacket& p, Bytes& out);
void encodePingreq(Bytes& out);
void encodePingresp(Bytes& out);

inline Bytes encodeConnect(const ConnectPacket& p) {
    Bytes out;
    encodeConnect(p, out);
    return out;
}
inline Bytes encodeConnack(ProtocolVersion version, bool sessionPresent, uint8_t code,
                           const std::vector<Property>& props = {}) {
    Bytes out;
    encodeConnack(version, sessionPresent, code, props, out);
    return out;
}
inline Bytes encodePublish(const PublishPacket& p, ProtocolVersion version) {
    Bytes out;
    encodePublish(p, version, out);
    return out;
}
inline Bytes encodeSubscribe(const SubscribePacket& p, ProtocolVersion version) {
    Bytes out;
    encodeSubscribe(p, version, out);
    return out;
}
inline Bytes encodeSuback(const SubackPacket& p, ProtocolVersion version) {
    Bytes out;
    encodeSuback(p, version, out);
    return out;
}
inline Bytes encodeUnsubscribe(const UnsubscribePacket& p, ProtocolVersion version) {
    Bytes out;
    encodeUnsubscribe(p, version, out);
    return out;
}
inline Bytes encodeUnsuback(const UnsubackPacket& p, ProtocolVersion version) {
    Bytes out;
    encodeUnsuback(p, version, out);
    return out;
}
inline Bytes encodeAck(const AckPacket& p, ProtocolVersion version) {
    Bytes out;
    encodeAck(p, version, out);
    return out;
}
inline Bytes encodeDisconnect(ProtocolVersion version, uint8_t reason,
                              const std::vector<Property>& props = {}) {
    Bytes out;
    encodeDisconnect(version, reason, props, out);
    return out;
}
inline Bytes encodeAuth(const AuthPacket& p) {
    Bytes out;
    encodeAuth(p, out);
    return out;
}
inline Bytes encodePingreq() {
    Bytes out;
    encodePingreq(out);
    return out;
}
inline Bytes encodePingresp() {
    Bytes out;
    encodePingresp(out);
    return out;
}

}  // namespace moat::mqtt
