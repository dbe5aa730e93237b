#pragma once
// Re-encoding a client PUBLISH for integrity: strip the v3 signature trailer, and (v5,
// stamp_identity) replace client-supplied `moat-identity` user properties by the gateway's.
// Everything else is kept byte for byte: flags, topic (empty when a topic alias is used),
// packet id, every other property in its order (topic alias included), payload.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "gateway/integrity/Checker.h"
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

// Wills. The broker publishes a will for the client, later, so a will is held to the same
// rules as a PUBLISH, at CONNECT: a will topic under integrity.rules must carry a valid
// signature (v5: moat-sig / moat-ts in the will properties; v3: the trailer at the end of the
// will payload, to strip before the CONNECT goes on, see Outcome::trailer).
Checker::Outcome checkWill(Checker& checker, std::string_view topic, std::string_view payload,
                           const std::vector<mqtt::Property>& willProperties, bool v5);

// stamp_identity on a v5 will: client-supplied moat-identity user properties are dropped and
// moat-identity=<identity> is appended after the others.
void stampWillProperties(std::vector<mqtt::Property>& willProperties, std::string_view identity);

}  // namespace moat::integrity
