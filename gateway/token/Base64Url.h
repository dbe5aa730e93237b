#pragma once
// Strict base64url (RFC 4648 §5) without padding, as JWS compact serialisation uses it
// (RFC 7515 §2). Anything else is refused rather than repaired: '=' padding, '+' or '/',
// whitespace, a length of 1 mod 4, and non-zero unused bits in the last character (so every
// decoded value has exactly one encoding and a token cannot be altered without changing it).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::token {

std::optional<std::string> base64UrlDecode(std::string_view in);
std::string base64UrlEncode(std::string_view in);
// True when every character is in the base64url alphabet (cheap pre-check for JWT shape).
bool isBase64UrlAlphabet(std::string_view in);

}  // namespace moat::token
