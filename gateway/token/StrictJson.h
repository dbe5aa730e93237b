#pragma once
// JSON for token headers, claims and JWKS documents, parsed strictly: one document, valid
// UTF-8, bounded nesting, and no object with the same key twice. Duplicate keys are how two
// JSON parsers are made to read different claims from one signed token (RFC 7515 §5.2 lets a
// verifier refuse them; RFC 8725 §3.x asks it to), so a token carrying them is refused rather
// than read "last one wins". nlohmann::json has no flag for this; its parser callback sees
// every key with its nesting depth, which is enough to track the keys of each open object.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace moat::token {

inline constexpr int kMaxJsonDepth = 16;

struct JsonResult {
    std::optional<nlohmann::json> value;  // set on success
    std::string error;                    // "not JSON", "duplicate key \"x\"", "too deeply nested"
};

// Never throws for any input (allocation failure aside).
JsonResult parseStrictJson(std::string_view text);

}  // namespace moat::token
