// Fuzzes token parsing and verification (gateway/token/): the input is a token as it arrives
// in a CONNECT password; the first byte picks which verifier input it is (token / JWKS
// document). Checks:
//   - nothing crashes, leaks or reads out of bounds (ASan/UBSan);
//   - with only an HMAC secret configured and HS* disallowed, no token is ever accepted;
//   - an accepted token has a usable identity and a non-empty algorithm;
//   - base64url decoding is canonical: decode(x) = y implies encode(y) = x;
//   - strict JSON never accepts what the lenient parse refuses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/token/Base64Url.h"
#include "gateway/token/Jwt.h"
#include "gateway/token/KeySet.h"
#include "gateway/token/StrictJson.h"
#include "gateway/token/TokenVerifier.h"

using namespace moat::token;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

struct Keys {
    KeySet hmacOnly;
    KeySet hmac;
    ClaimRules noHmac;
    ClaimRules all;
    Keys() {
        hmacOnly.addHmacSecret("fuzz-secret-0123456789abcdef0123", "fuzz");
        hmac.addHmacSecret("k", "fuzz-short");
        for (auto a : allAlgorithms()) {
            all.algorithms.add(a);
            if (familyOf(a) != KeyFamily::Hmac) noHmac.algorithms.add(a);
        }
        all.rolesClaim = "roles";
        all.maxLifetimeSeconds = 3600;
        all.issuer = "i";
        all.audience = "a";
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static Keys keys;
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 3) {
        case 0: {
            (void)looksLikeJwt(in);
            const std::set<std::string> roles{"device"};
            auto r = TokenVerifier(keys.noHmac, keys.hmacOnly, &roles).verify(in, 1'700'000'000);
            check(!r.ok());
            auto r2 = TokenVerifier(keys.all, keys.hmac, &roles).verify(in, 1'700'000'000);
            if (r2.ok()) check(acceptableIdentity(r2.identity) && !r2.algorithm.empty());
            break;
        }
        case 1: {
            KeySet ks;
            std::string err;
            std::vector<std::string> skipped;
            (void)ks.addJwks(in, "fuzz", err, skipped);
            break;
        }
        case 2: {
            if (auto dec = base64UrlDecode(in)) check(base64UrlEncode(*dec) == in);
            auto strict = parseStrictJson(in);
            if (strict.value)
                check(!nlohmann::json::parse(in, nullptr, false, false).is_discarded());
            break;
        }
    }
    return 0;
}
