// PUBACK/PUBREC/PUBREL/PUBCOMP, DISCONNECT, AUTH, PINGREQ/PINGRESP: the packets whose v5 form is
// "optional reason code, then optional properties".

#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/PropertyWalker.h"
#include "gateway/mqtt/Wire.h"

namespace moat::mqtt {

namespace {

bool isAck(PacketType t) {
    return t == PacketType::Puback || t == PacketType::Pubrec || t == PacketType::Pubrel ||
           t == PacketType::Pubcomp;
}

// The v5 tail shared by acks, DISCONNECT and AUTH: nothing (reason 0), a reason, or a reason
// and properties.
uint8_t readReasonAndProperties(wire::Reader& r, PacketType type, uint8_t& code,
                                std::vector<Property>& props) {
    code = reason::Success;
    props.clear();
    if (r.empty()) return reason::Success;
    r.u8(code);
    if (!validReasonFor(type, code)) return reason::ProtocolError;
    if (r.empty()) return reason::Success;
    if (uint8_t rc = detail::readOwnedProperties(r, scopeOf(type), props)) return rc;
    return r.empty() ? reason::Success : reason::MalformedPacket;
}

// Shortest form: reason and properties are left out while they are the defaults.
bool writeReasonAndProperties(uint8_t code, const std::vector<Property>& props, Bytes& out) {
    if (props.empty()) {
        if (code != reason::Success) wire::putU8(out, code);
        return true;
    }
    wire::putU8(out, code);
    return encodeProperties(props, out);
}

}  // namespace

uint8_t decodeAck(PacketType type, const uint8_t* body, size_t len, ProtocolVersion version,
                  AckPacket& out) {
    if (!isAck(type)) return reason::ProtocolError;
    out.type = type;
    wire::Reader r(body, len);
    if (!r.u16(out.packetId)) return reason::MalformedPacket;
    if (out.packetId == 0) return reason::ProtocolError;
    if (version != ProtocolVersion::V5) {
        out.reason = reason::Success;
        out.properties.clear();
        return r.empty() ? reason::Success : reason::MalformedPacket;
    }
    return readReasonAndProperties(r, type, out.reason, out.properties);
}

bool encodeAck(const AckPacket& p, ProtocolVersion version, Bytes& out) {
    if (!isAck(p.type)) return false;
    const size_t start = wire::beginPacket(out);
    wire::putU16(out, p.packetId);
    const bool ok =
        version != ProtocolVersion::V5 || writeReasonAndProperties(p.reason, p.properties, out);
    const uint8_t flags = p.type == PacketType::Pubrel ? 0x02 : 0x00;
    return wire::finishPacket(out, start, uint8_t(uint8_t(p.type) << 4 | flags), ok);
}

uint8_t decodeDisconnect(const uint8_t* body, size_t len, ProtocolVersion version,
                         DisconnectPacket& out) {
    out.reason = reason::Success;
    out.properties.clear();
    if (version != ProtocolVersion::V5) return decodeEmpty(len);
    wire::Reader r(body, len);
    return readReasonAndProperties(r, PacketType::Disconnect, out.reason, out.properties);
}

bool encodeDisconnect(ProtocolVersion version, uint8_t code, const std::vector<Property>& props,
                      Bytes& out) {
    const size_t start = wire::beginPacket(out);
    const bool ok = version != ProtocolVersion::V5 || writeReasonAndProperties(code, props, out);
    return wire::finishPacket(out, start, uint8_t(PacketType::Disconnect) << 4, ok);
}

uint8_t decodeAuth(const uint8_t* body, size_t len, ProtocolVersion version, AuthPacket& out) {
    out.reason = reason::Success;
    out.properties.clear();
    if (version != ProtocolVersion::V5) return reason::MalformedPacket;
    wire::Reader r(body, len);
    return readReasonAndProperties(r, PacketType::Auth, out.reason, out.properties);
}

bool encodeAuth(const AuthPacket& p, Bytes& out) {
    const size_t start = wire::beginPacket(out);
    const bool ok = writeReasonAndProperties(p.reason, p.properties, out);
    return wire::finishPacket(out, start, uint8_t(PacketType::Auth) << 4, ok);
}

void encodePingreq(Bytes& out) {
    out.push_back(uint8_t(PacketType::Pingreq) << 4);
    out.push_back(0);
}

void encodePingresp(Bytes& out) {
    out.push_back(uint8_t(PacketType::Pingresp) << 4);
    out.push_back(0);
}

}  // namespace moat::mqtt
