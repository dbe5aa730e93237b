#pragma once
// Basic MQTT vocabulary shared by every part of the codec: packet types, protocol versions and
// reason codes. Names here are used as metric labels, so they never change once published.

#include <cstdint>

namespace moat::mqtt {

enum class PacketType : uint8_t {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Pubrec = 5,
    Pubrel = 6,
    Pubcomp = 7,
    Subscribe = 8,
    Suback = 9,
    Unsubscribe = 10,
    Unsuback = 11,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
    Auth = 15,  // MQTT 5 only; reserved in 3.x
};

// "CONNECT", "PUBLISH", ...; "RESERVED" for 0.
const char* packetTypeName(PacketType type);

// The protocol level byte of CONNECT.
enum class ProtocolVersion : uint8_t { V31 = 3, V311 = 4, V5 = 5 };

// "3.1", "3.1.1", "5.0".
const char* versionName(ProtocolVersion version);

// MQTT 5 reason codes (spec 2.4). Several codes share a value; the alias that reads best at the
// call site should be used.
namespace reason {
inline constexpr uint8_t Success = 0x00;
inline constexpr uint8_t NormalDisconnection = 0x00;
inline constexpr uint8_t GrantedQos0 = 0x00;
inline constexpr uint8_t GrantedQos1 = 0x01;
inline constexpr uint8_t GrantedQos2 = 0x02;
inline constexpr uint8_t DisconnectWithWillMessage = 0x04;
inline constexpr uint8_t NoMatchingSubscribers = 0x10;
inline constexpr uint8_t NoSubscriptionExisted = 0x11;
inline constexpr uint8_t ContinueAuthentication = 0x18;
inline constexpr uint8_t ReAuthenticate = 0x19;
inline constexpr uint8_t UnspecifiedError = 0x80;
inline constexpr uint8_t MalformedPacket = 0x81;
inline constexpr uint8_t ProtocolError = 0x82;
inline constexpr uint8_t ImplementationSpecificError = 0x83;
inline constexpr uint8_t UnsupportedProtocolVersion = 0x84;
inline constexpr uint8_t ClientIdentifierNotValid = 0x85;
inline constexpr uint8_t BadUsernameOrPassword = 0x86;
inline constexpr uint8_t NotAuthorized = 0x87;
inline constexpr uint8_t ServerUnavailable = 0x88;
inline constexpr uint8_t ServerBusy = 0x89;
inline constexpr uint8_t Banned = 0x8A;
inline constexpr uint8_t ServerShuttingDown = 0x8B;
inline constexpr uint8_t BadAuthenticationMethod = 0x8C;
inline constexpr uint8_t KeepAliveTimeout = 0x8D;
inline constexpr uint8_t SessionTakenOver = 0x8E;
inline constexpr uint8_t TopicFilterInvalid = 0x8F;
inline constexpr uint8_t TopicNameInvalid = 0x90;
inline constexpr uint8_t PacketIdInUse = 0x91;
inline constexpr uint8_t PacketIdNotFound = 0x92;
inline constexpr uint8_t ReceiveMaximumExceeded = 0x93;
inline constexpr uint8_t TopicAliasInvalid = 0x94;
inline constexpr uint8_t PacketTooLarge = 0x95;
inline constexpr uint8_t MessageRateTooHigh = 0x96;
inline constexpr uint8_t QuotaExceeded = 0x97;
inline constexpr uint8_t AdministrativeAction = 0x98;
inline constexpr uint8_t PayloadFormatInvalid = 0x99;
inline constexpr uint8_t RetainNotSupported = 0x9A;
inline constexpr uint8_t QosNotSupported = 0x9B;
inline constexpr uint8_t UseAnotherServer = 0x9C;
inline constexpr uint8_t ServerMoved = 0x9D;
inline constexpr uint8_t SharedSubscriptionsNotSupported = 0x9E;
inline constexpr uint8_t ConnectionRateExceeded = 0x9F;
inline constexpr uint8_t MaximumConnectTime = 0xA0;
inline constexpr uint8_t SubscriptionIdsNotSupported = 0xA1;
inline constexpr uint8_t WildcardSubscriptionsNotSupported = 0xA2;
}  // namespace reason

// snake_case name of a reason code ("malformed_packet"), "success" for 0x00, "unknown" for values
// the spec does not define. Used as a metric label.
const char* reasonName(uint8_t code);

// True if `code` is a reason code MQTT 5 allows in a packet of this type (spec 2.4 table 2-6).
bool validReasonFor(PacketType type, uint8_t code);

// MQTT 3.1 / 3.1.1 CONNACK return codes.
namespace v3 {
inline constexpr uint8_t Accepted = 0;
inline constexpr uint8_t UnacceptableProtocolVersion = 1;
inline constexpr uint8_t IdentifierRejected = 2;
inline constexpr uint8_t ServerUnavailable = 3;
inline constexpr uint8_t BadUsernameOrPassword = 4;
inline constexpr uint8_t NotAuthorized = 5;
// SUBACK return code for a refused filter (3.1.1).
inline constexpr uint8_t SubackFailure = 0x80;
}  // namespace v3

// Maps a v5 CONNACK refusal reason to the closest v3 return code. Banned and quota exceeded
// become "not authorized"; reasons with no v3 equivalent become "server unavailable".
uint8_t v3ConnackCodeFor(uint8_t v5reason);

}  // namespace moat::mqtt
