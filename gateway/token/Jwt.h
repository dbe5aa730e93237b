#pragma once
// JWS compact serialisation (RFC 7515 §7.1): header.payload.signature, each base64url.
// looksLikeJwt() is the rule that decides whether a CONNECT password is a token or a
// password (CONTRACT §3): three base64url parts and a header that is a JSON object with a
// string "alg". It reads the header only; a password that happens to look like that is sent
// to token verification and fails there (nobody's real password is a JWS header).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace moat::token {

inline constexpr size_t kMaxTokenBytes = 8 * 1024;

struct JwtParts {
    std::string_view headerB64, payloadB64, signatureB64;
    std::string_view signingInput;  // header "." payload: what the signature covers
};

// Splits on exactly two dots; each part non-empty base64url alphabet (the signature too: an
// unsigned token has no place here).
std::optional<JwtParts> splitJwt(std::string_view token);

// The decoded header, when it is a strict JSON object with a string "alg".
std::optional<nlohmann::json> decodeHeader(std::string_view headerB64);

bool looksLikeJwt(std::string_view password);

}  // namespace moat::token
