#pragma once
// Authenticity of what replicas share (config `cluster.key_file`): HMAC-SHA256 under the
// fleet's key over every event on the channel and every ban / connection record in Redis.
// Anyone who can reach Redis can publish and write keys; with a key, only holders of the key
// can ban, kick or claim connections. Pure functions (no Redis, no loop), unit-tested.
//
// Event envelope: `<event line> t=<unix ms> s=<64 hex>`; the MAC covers everything before
// " s=", so the send time is authenticated and an event is refused outside ±kMaxEventSkewMs
// of the receiver's clock (a recorded event cannot be replayed later).
// Ban record (the value of <prefix>ban:…): `<duration ms> <end unix ms> <64 hex>`, the MAC
// binding the Redis key name, so a record cannot be moved to another subject, and the end,
// so a key's TTL cannot lengthen a ban. Without a key the value is `<duration ms>` as before.
// Connection record (a field of <prefix>conn:<replica>): `<count> <64 hex>`, the MAC binding
// the hash name and the address.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::cluster {

inline constexpr uint64_t kMaxEventSkewMs = 60000;

enum class Authenticity : uint8_t {
    Ok,            // verified (or no key configured)
    Unsigned,      // a key is configured and the item carries no MAC
    BadSignature,  // the MAC does not verify (wrong key, altered)
    Stale,         // an event sent outside the accepted clock window
    Malformed,     // not even the shape of a record
};
const char* authenticityName(Authenticity a);

std::string hmacHex(std::string_view key, std::string_view message);

// ---- events
std::string sealEvent(std::string_view line, std::string_view key, uint64_t nowUnixMs);
struct OpenedEvent {
    Authenticity result = Authenticity::Malformed;
    std::string_view line;  // the event line without the envelope (when Ok)
};
// Without a key every event is accepted (an envelope, if any, is stripped unchecked).
OpenedEvent openEvent(std::string_view payload, std::string_view key, uint64_t nowUnixMs);

// ---- ban records
std::string sealBan(std::string_view key, std::string_view redisKey, uint64_t durationMs,
                    uint64_t endUnixMs);
struct BanRecord {
    Authenticity result = Authenticity::Malformed;
    uint64_t durationMs = 0;
    std::optional<uint64_t> endUnixMs;  // signed records only
};
BanRecord openBan(std::string_view value, std::string_view key, std::string_view redisKey);

// ---- connection records
std::string sealConn(std::string_view key, std::string_view redisKey, std::string_view ip,
                     uint32_t count);
struct ConnRecord {
    Authenticity result = Authenticity::Malformed;
    uint32_t count = 0;
};
ConnRecord openConn(std::string_view value, std::string_view key, std::string_view redisKey,
                    std::string_view ip);

// An IPv4 or IPv6 address literal as the gateway writes them (the subject of an IP ban and
// of a `conn` event): anything else is refused before it takes memory.
// Client-id owner record (<prefix>owner:<client_id>): "<identity-escaped> <end_unix_ms> <mac>"
// signed, "<identity-escaped>" unsigned. The TTL is the key's; a signed end bounds it.
std::string sealOwner(std::string_view key, std::string_view redisKey, std::string_view identity,
                      uint64_t endUnixMs);
struct OwnerRecord {
    Authenticity result = Authenticity::Malformed;
    std::string identity;
    std::optional<uint64_t> endUnixMs;  // signed records only
};
OwnerRecord openOwner(std::string_view value, std::string_view key, std::string_view redisKey);

bool isIpLiteral(std::string_view s);

}  // namespace moat::cluster
