#pragma once
// JWS signature verification with OpenSSL 3 EVP (RFC 7518 §3): RSASSA-PKCS1-v1_5 (RS*),
// RSASSA-PSS with salt = hash length (PS*), ECDSA with the raw R‖S encoding JWS uses (turned
// into DER for OpenSSL; a wrong length is simply invalid), Ed25519 (RFC 8037) and HMAC
// compared in constant time. The key must accept the algorithm (TokenKey::accepts): the
// caller never asks an RSA key about HS256. Thread-safe: no shared mutable state.

#include <string_view>

#include "gateway/token/Algorithm.h"
#include "gateway/token/KeySet.h"

namespace moat::token {

bool verifySignature(Algorithm alg, const TokenKey& key, std::string_view signingInput,
                     std::string_view signature);

}  // namespace moat::token
