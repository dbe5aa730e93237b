#pragma once
// Where a PUBLISH carries its signature (CONTRACT.md §3):
//  - MQTT 5: user properties `moat-sig` (base64) and `moat-ts` (decimal Unix seconds);
//  - MQTT 3.x: a trailer at the end of the payload, [8-byte big-endian ts] ‖ signature, the
//    timestamp present exactly when the rule has max_age.
// Parsing is allocation-free: views into the packet, the decoded v5 signature in a fixed
// buffer.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "gateway/integrity/Signature.h"

namespace moat::integrity {

inline constexpr std::string_view kSigProperty = "moat-sig";
inline constexpr std::string_view kTsProperty = "moat-ts";
inline constexpr std::string_view kIdentityProperty = "moat-identity";

// Why a signed publish was refused; the text is the audit log's `reason`.
enum class Failure : uint8_t {
    None,
    MissingSignature,
    BadSignature,      // wrong value, wrong length, not base64, duplicated
    MissingTimestamp,  // max_age set, no timestamp sent (v5)
    BadTimestamp,      // moat-ts not a decimal number, or duplicated
    StaleTimestamp,    // older (or further in the future) than max_age
    NoKey,             // no usable key for this identity
    Replayed,          // max_age set: this signature was already accepted within max_age
    ReplayCacheFull,   // max_age set: the replay cache has no room to remember it (fail closed)
};
const char* failureReason(Failure f);

struct SignatureFields {
    std::span<const uint8_t> signature;
    std::optional<uint64_t> timestamp;
    std::string_view payload;  // what the signature covers (v3: without the trailer)
    size_t trailer = 0;        // v3: bytes to strip from the end of the payload
};

// v5: reads moat-sig / moat-ts from a PUBLISH properties block that decodePublish validated.
// The decoded signature lands in `sigBuf`. Missing moat-sig -> MissingSignature; more than one
// moat-sig or moat-ts, bad base64 or a signature over 64 bytes -> BadSignature / BadTimestamp.
Failure extractV5(std::span<const uint8_t> properties, std::string_view payload,
                  std::array<uint8_t, kEd25519Size>& sigBuf, SignatureFields& out);

// v3: splits the trailer off `payload`. A payload shorter than the trailer -> MissingSignature.
Failure extractV3(std::string_view payload, Algorithm algorithm, bool withTimestamp,
                  SignatureFields& out);

// Strict decimal (1..20 digits, no sign, no spaces, no overflow).
std::optional<uint64_t> parseDecimal(std::string_view s);
// Standard base64 (RFC 4648 §4), padding optional, into `out`; returns the decoded size or
// nullopt on a bad symbol, bad padding, non-zero tail bits or an output longer than `out`.
std::optional<size_t> base64DecodeInto(std::string_view text, std::span<uint8_t> out);

}  // namespace moat::integrity
