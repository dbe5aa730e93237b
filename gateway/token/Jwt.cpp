#include "gateway/token/Jwt.h"

#include "gateway/token/Base64Url.h"
#include "gateway/token/StrictJson.h"

namespace moat::token {

std::optional<JwtParts> splitJwt(std::string_view token) {
    const size_t a = token.find('.');
    if (a == std::string_view::npos) return std::nullopt;
    const size_t b = token.find('.', a + 1);
    if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos)
        return std::nullopt;
    JwtParts p;
    p.headerB64 = token.substr(0, a);
    p.payloadB64 = token.substr(a + 1, b - a - 1);
    p.signatureB64 = token.substr(b + 1);
    p.signingInput = token.substr(0, b);
    for (auto part : {p.headerB64, p.payloadB64, p.signatureB64})
        if (part.empty() || !isBase64UrlAlphabet(part)) return std::nullopt;
    return p;
}

std::optional<nlohmann::json> decodeHeader(std::string_view headerB64) {
    auto bytes = base64UrlDecode(headerB64);
    if (!bytes) return std::nullopt;
    auto parsed = parseStrictJson(*bytes);
    if (!parsed.value || !parsed.value->is_object()) return std::nullopt;
    auto alg = parsed.value->find("alg");
    if (alg == parsed.value->end() || !alg->is_string()) return std::nullopt;
    return std::move(parsed.value);
}

bool looksLikeJwt(std::string_view password) {
    if (password.size() > kMaxTokenBytes * 4) return false;  // not even worth a look
    auto parts = splitJwt(password);
    if (!parts) return false;
    auto bytes = base64UrlDecode(parts->headerB64);
    if (!bytes) return false;
    // Lenient on purpose: a header with duplicate keys is still a token (refused as one by
    // verification), never re-read as a password.
    auto header = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
    if (!header.is_object()) return false;
    auto alg = header.find("alg");
    return alg != header.end() && alg->is_string();
}

}  // namespace moat::token
