#include "gateway/mqtt/Types.h"

#include <algorithm>
#include <initializer_list>

namespace moat::mqtt {

const char* packetTypeName(PacketType type) {
    switch (type) {
        case PacketType::Connect:
            return "CONNECT";
        case PacketType::Connack:
            return "CONNACK";
        case PacketType::Publish:
            return "PUBLISH";
        case PacketType::Puback:
            return "PUBACK";
        case PacketType::Pubrec:
            return "PUBREC";
        case PacketType::Pubrel:
            return "PUBREL";
        case PacketType::Pubcomp:
            return "PUBCOMP";
        case PacketType::Subscribe:
            return "SUBSCRIBE";
        case PacketType::Suback:
            return "SUBACK";
        case PacketType::Unsubscribe:
            return "UNSUBSCRIBE";
        case PacketType::Unsuback:
            return "UNSUBACK";
        case PacketType::Pingreq:
            return "PINGREQ";
        case PacketType::Pingresp:
            return "PINGRESP";
        case PacketType::Disconnect:
            return "DISCONNECT";
        case PacketType::Auth:
            return "AUTH";
    }
    return "RESERVED";
}

const char* versionName(ProtocolVersion version) {
    switch (version) {
        case ProtocolVersion::V31:
            return "3.1";
        case ProtocolVersion::V311:
            return "3.1.1";
        case ProtocolVersion::V5:
            return "5.0";
    }
    return "unknown";
}

const char* reasonName(uint8_t code) {
    switch (code) {
        case 0x00:
            return "success";
        case 0x01:
            return "granted_qos1";
        case 0x02:
            return "granted_qos2";
        case 0x04:
            return "disconnect_with_will_message";
        case 0x10:
            return "no_matching_subscribers";
        case 0x11:
            return "no_subscription_existed";
        case 0x18:
            return "continue_authentication";
        case 0x19:
            return "re_authenticate";
        case 0x80:
            return "unspecified_error";
        case 0x81:
            return "malformed_packet";
        case 0x82:
            return "protocol_error";
        case 0x83:
            return "implementation_specific_error";
        case 0x84:
            return "unsupported_protocol_version";
        case 0x85:
            return "client_identifier_not_valid";
        case 0x86:
            return "bad_username_or_password";
        case 0x87:
            return "not_authorized";
        case 0x88:
            return "server_unavailable";
        case 0x89:
            return "server_busy";
        case 0x8A:
            return "banned";
        case 0x8B:
            return "server_shutting_down";
        case 0x8C:
            return "bad_authentication_method";
        case 0x8D:
            return "keep_alive_timeout";
        case 0x8E:
            return "session_taken_over";
        case 0x8F:
            return "topic_filter_invalid";
        case 0x90:
            return "topic_name_invalid";
        case 0x91:
            return "packet_id_in_use";
        case 0x92:
            return "packet_id_not_found";
        case 0x93:
            return "receive_maximum_exceeded";
        case 0x94:
            return "topic_alias_invalid";
        case 0x95:
            return "packet_too_large";
        case 0x96:
            return "message_rate_too_high";
        case 0x97:
            return "quota_exceeded";
        case 0x98:
            return "administrative_action";
        case 0x99:
            return "payload_format_invalid";
        case 0x9A:
            return "retain_not_supported";
        case 0x9B:
            return "qos_not_supported";
        case 0x9C:
            return "use_another_server";
        case 0x9D:
            return "server_moved";
        case 0x9E:
            return "shared_subscriptions_not_supported";
        case 0x9F:
            return "connection_rate_exceeded";
        case 0xA0:
            return "maximum_connect_time";
        case 0xA1:
            return "subscription_identifiers_not_supported";
        case 0xA2:
            return "wildcard_subscriptions_not_supported";
        default:
            return "unknown";
    }
}

namespace {
bool oneOf(uint8_t code, std::initializer_list<uint8_t> allowed) {
    return std::find(allowed.begin(), allowed.end(), code) != allowed.end();
}
}  // namespace

bool validReasonFor(PacketType type, uint8_t code) {
    switch (type) {
        case PacketType::Connack:
            return oneOf(code, {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F});
        case PacketType::Puback:
        case PacketType::Pubrec:
            return oneOf(code, {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99});
        case PacketType::Pubrel:
        case PacketType::Pubcomp:
            return code == 0x00 || code == 0x92;
        case PacketType::Suback:
            return oneOf(code,
                         {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2});
        case PacketType::Unsuback:
            return oneOf(code, {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91});
        case PacketType::Disconnect:
            return oneOf(code, {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2});
        case PacketType::Auth:
            return code == 0x00 || code == 0x18 || code == 0x19;
        default:
            return false;
    }
}

uint8_t v3ConnackCodeFor(uint8_t v5reason) {
    switch (v5reason) {
        case reason::Success:
            return v3::Accepted;
        case reason::UnsupportedProtocolVersion:
            return v3::UnacceptableProtocolVersion;
        case reason::ClientIdentifierNotValid:
            return v3::IdentifierRejected;
        case reason::BadUsernameOrPassword:
            return v3::BadUsernameOrPassword;
        case reason::NotAuthorized:
        case reason::Banned:
        case reason::QuotaExceeded:
        case reason::BadAuthenticationMethod:
        case reason::RetainNotSupported:  // a will beyond the retain / QoS rights
        case reason::QosNotSupported:
            return v3::NotAuthorized;
        default:
            return v3::ServerUnavailable;
    }
}

}  // namespace moat::mqtt
