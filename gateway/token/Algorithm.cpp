#include "gateway/token/Algorithm.h"

namespace moat::token {

namespace {
constexpr const char* kNames[kAlgorithmCount] = {"RS256", "RS384", "RS512", "PS256",
                                                 "PS384", "PS512", "ES256", "ES384",
                                                 "EdDSA", "HS256", "HS384", "HS512"};
}

std::optional<Algorithm> algorithmFromName(std::string_view name) {
    for (int i = 0; i < kAlgorithmCount; ++i)
        if (name == kNames[i]) return static_cast<Algorithm>(i);
    return std::nullopt;
}

const char* algorithmName(Algorithm a) {
    return kNames[static_cast<int>(a)];
}

KeyFamily familyOf(Algorithm a) {
    switch (a) {
        case Algorithm::RS256:
        case Algorithm::RS384:
        case Algorithm::RS512:
        case Algorithm::PS256:
        case Algorithm::PS384:
        case Algorithm::PS512:
            return KeyFamily::Rsa;
        case Algorithm::ES256:
            return KeyFamily::EcP256;
        case Algorithm::ES384:
            return KeyFamily::EcP384;
        case Algorithm::EdDSA:
            return KeyFamily::Ed25519;
        case Algorithm::HS256:
        case Algorithm::HS384:
        case Algorithm::HS512:
            return KeyFamily::Hmac;
    }
    return KeyFamily::Hmac;
}

const char* familyName(KeyFamily f) {
    switch (f) {
        case KeyFamily::Rsa:
            return "RSA";
        case KeyFamily::EcP256:
            return "EC P-256";
        case KeyFamily::EcP384:
            return "EC P-384";
        case KeyFamily::Ed25519:
            return "Ed25519";
        case KeyFamily::Hmac:
            return "HMAC";
    }
    return "?";
}

std::vector<Algorithm> allAlgorithms() {
    std::vector<Algorithm> out;
    for (int i = 0; i < kAlgorithmCount; ++i) out.push_back(static_cast<Algorithm>(i));
    return out;
}

}  // namespace moat::token
