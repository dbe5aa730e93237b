#pragma once
// What replicas tell each other on the `<key_prefix>events` Redis channel, and the Redis key
// names they share. Pure functions: no Redis, no event loop (unit-tested and fuzzed).
//
// Wire form: one line of space-separated fields, the first being the format version:
//
//   moat1 ban  <replica> ip|id <subject> <remaining_ms> <duration_ms>
//   moat1 kick <replica> <identity> banned|revoked|no_rights <sha256-hex|->
//   moat1 conn <replica> <ip> <live_connections> <accepted_since_last_event>
//   moat1 hb   <replica>
//   moat1 own  <replica> <client_id> <identity> <hold_ms>     (hold 0: released)
//
// Free-text fields (replica, subject, identity) are percent-encoded: every byte outside
// '!'..'~', and '%' itself, becomes %XX, so a field never contains a space and an identity can
// be any byte string. Decoding is strict (unknown type, wrong field count, bad escape,
// oversized field, number out of range: no event), because any process that can reach Redis
// can publish on the channel.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::cluster {

enum class SubjectKind : uint8_t { Ip, Identity };

// Why a replica asks every replica to disconnect an identity.
enum class KickReason : uint8_t {
    Banned,    // identity ban (v5 DISCONNECT 0x8A)
    Revoked,   // its certificate is revoked by the CRL (0x98)
    NoRights,  // the policy left it no rights (0x98)
};

const char* kickReasonName(KickReason reason);

struct ClusterEvent {
    enum class Type : uint8_t { Ban, Kick, Conn, Heartbeat, Owner };
    Type type = Type::Heartbeat;
    std::string replica;  // who sent it; a replica ignores its own events

    // Ban: kind + subject; Kick: subject = identity; Conn: subject = source IP.
    SubjectKind kind = SubjectKind::Ip;
    std::string subject;

    std::chrono::milliseconds remaining{0};  // Ban: time left
    std::chrono::milliseconds duration{0};   // Ban: the full duration (drives doubling)

    KickReason reason = KickReason::Banned;  // Kick
    std::string fingerprint;  // Kick: lowercase hex SHA-256 of the certificate; empty = any

    uint32_t connections = 0;  // Conn: the sender's live connections from this IP
    uint32_t accepted = 0;     // Conn: connections it accepted from this IP since its last event

    // Owner: subject = client id, owner = identity, remaining = how long it holds the id.
    std::string owner;
};

// Bounds on decoded fields (after unescaping).
inline constexpr size_t kMaxSubjectBytes = 1024;  // BanTable tracks identities up to this size
inline constexpr size_t kMaxReplicaBytes = 256;

std::string encodeEvent(const ClusterEvent& event);
std::optional<ClusterEvent> decodeEvent(std::string_view line);

// Percent-encoding of one field (see above). unescapeField() fails on a malformed escape, on
// a raw byte that should have been escaped, and past maxBytes decoded bytes.
std::string escapeField(std::string_view raw);
std::optional<std::string> unescapeField(std::string_view field, size_t maxBytes);

// ---- Redis key names (all under the configured key_prefix)
//   <prefix>ban:ip:<ip>        value: duration ms; TTL: what is left of the ban
//   <prefix>ban:id:<identity>
//   <prefix>fail:ip:<ip>       INCR per failed login; TTL: bans.window from the first one
//   <prefix>fail:id:<identity>
//   <prefix>conn:<replica>     hash: source IP -> live connections at that replica; TTL
//                              refreshed by the replica's heartbeat, so a crashed replica's
//                              counts vanish by themselves
//   <prefix>owner:<client_id>  client-id owner: identity (sealed, see ClusterAuth); TTL: the
//                              hold left (session_owner_ttl while connected)
//   <prefix>events             the pub/sub channel
std::string banKey(std::string_view prefix, SubjectKind kind, std::string_view subject);
std::string failKey(std::string_view prefix, SubjectKind kind, std::string_view subject);
std::string connKey(std::string_view prefix, std::string_view replica);
std::string eventsChannel(std::string_view prefix);

struct BanKey {
    SubjectKind kind;
    std::string subject;
};
std::optional<BanKey> parseBanKey(std::string_view prefix, std::string_view key);
std::optional<std::string> parseConnKey(std::string_view prefix, std::string_view key);
std::string ownerKey(std::string_view prefix, std::string_view clientId);
std::optional<std::string> parseOwnerKey(std::string_view prefix, std::string_view key);

// A SCAN MATCH pattern for every key that starts with prefix + what (glob characters of the
// prefix escaped): scanPattern("moat:", "ban:") == "moat:ban:*".
std::string scanPattern(std::string_view prefix, std::string_view what);

}  // namespace moat::cluster
