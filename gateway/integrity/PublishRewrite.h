#pragma once
// Re-encoding a client PUBLISH for integrity: strip the v3 signature trailer, and (v5,
// stamp_identity) replace client-supplied `moat-identity` user properties by the gateway's.
// Everything else is kept byte for byte: flags, topic (empty when a topic alias is used),
// packet id, every other property in its order (topic alias included), payload.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Packets.h"

namespace moat::integrity {

// The encoded user property `moat-identity=<identity>` (id, name, value), built once per
// connection. Empty if the identity is too long for an MQTT string.
std::vector<uint8_t> encodeIdentityProperty(std::string_view identity);

// True if the (validated) properties block holds a user property named `name`.
bool hasUserProperty(std::span<const uint8_t> properties, std::string_view name);

// Appends the rewritten packet to `out`: `payload` replaces the original payload; with
// `stamp` non-empty (v5 only), user properties named moat-identity are dropped and `stamp`
// (encoded properties) is appended after the others. False (out unchanged) if the result
// cannot be encoded.
bool rewritePublish(const mqtt::Frame& frame, const mqtt::PublishView& pub, bool v5,
                    std::string_view payload, std::span<const uint8_t> stamp,
                    std::vector<uint8_t>& out);

}  // namespace moat::integrity
