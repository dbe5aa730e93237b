#include <catch2/catch.hpp>

#include "TestTokens.h"
#include "gateway/token/Jwt.h"
#include "gateway/token/TokenVerifier.h"

using namespace moat::token;
using namespace moat::token::test;
using json = nlohmann::json;

namespace {

constexpr int64_t kNow = 1'800'000'000;
const std::string kSecret = "an-hmac-secret-of-at-least-32-bytes!!";

struct Fixture {
    PkeyPtr rsa = genRsa();
    PkeyPtr p256 = genEc("P-256");
    PkeyPtr p384 = genEc("P-384");
    PkeyPtr ed = genEd25519();
    KeySet keys;
    ClaimRules rules;
    std::set<std::string> roles{"device", "operator"};

    Fixture() {
        std::string err;
        REQUIRE(keys.addPem(publicPem(rsa.get()), "rsa.pem", err));
        REQUIRE(keys.addPem(publicPem(p256.get()), "p256.pem", err));
        REQUIRE(keys.addPem(publicPem(p384.get()), "p384.pem", err));
        REQUIRE(keys.addPem(publicPem(ed.get()), "ed.pem", err));
        keys.addHmacSecret(kSecret, "idp.secret");
        for (auto a : allAlgorithms()) rules.algorithms.add(a);
    }
    EVP_PKEY* keyFor(const std::string& alg) {
        if (alg[0] == 'R' || alg[0] == 'P') return rsa.get();
        if (alg == "ES256") return p256.get();
        if (alg == "ES384") return p384.get();
        if (alg == "EdDSA") return ed.get();
        return nullptr;
    }
    std::string token(const std::string& alg, const json& claims, const std::string& kid = "") {
        return makeJwt(alg, claims, keyFor(alg), kSecret, kid);
    }
    TokenResult verify(const std::string& t, int64_t now = kNow) {
        return TokenVerifier(rules, keys, &roles).verify(t, now);
    }
};

json claims(json extra = json::object()) {
    json c = {{"sub", "alice"}, {"exp", kNow + 600}, {"iat", kNow - 10}};
    for (auto& [k, v] : extra.items()) c[k] = v;
    return c;
}

}  // namespace

TEST_CASE("every supported algorithm verifies a good token", "[token][verify]") {
    Fixture f;
    for (auto a : allAlgorithms()) {
        const std::string alg = algorithmName(a);
        INFO(alg);
        auto r = f.verify(f.token(alg, claims()));
        CHECK(r.reason == "");
        CHECK(r.ok());
        CHECK(r.identity == "alice");
        CHECK(r.expiresAt == kNow + 600);
        CHECK(r.algorithm == alg);
    }
}

TEST_CASE("a tampered token fails its signature, for every algorithm", "[token][verify]") {
    Fixture f;
    for (auto a : allAlgorithms()) {
        const std::string alg = algorithmName(a);
        INFO(alg);
        auto good = f.token(alg, claims());
        // Same signature over other claims.
        auto other = f.token(alg, claims({{"sub", "mallory"}}));
        auto forged = other.substr(0, other.rfind('.')) + good.substr(good.rfind('.'));
        CHECK(f.verify(forged).reason == "bad signature");
        // A flipped signature bit.
        auto sig = *base64UrlDecode(good.substr(good.rfind('.') + 1));
        sig[sig.size() / 2] ^= 0x01;
        auto flipped = good.substr(0, good.rfind('.') + 1) + base64UrlEncode(sig);
        CHECK(f.verify(flipped).reason == "bad signature");
        // A truncated signature.
        auto cut = good.substr(0, good.rfind('.') + 1) + base64UrlEncode(sig.substr(0, 10));
        CHECK(f.verify(cut).reason == "bad signature");
    }
}

TEST_CASE("algorithm confusion: an RSA public key is never an HMAC secret", "[token][verify]") {
    Fixture f;
    // The classic attack: HS256 "signed" with the RSA public key PEM as the secret.
    const std::string pem = publicPem(f.rsa.get());
    auto forged = makeJwt("HS256", claims(), nullptr, pem);
    CHECK(f.verify(forged).reason == "bad signature");  // only the real HMAC secret is tried
    // Without any HMAC secret configured there is no key at all for HS256.
    KeySet onlyRsa;
    std::string err;
    REQUIRE(onlyRsa.addPem(pem, "rsa.pem", err));
    auto r = TokenVerifier(f.rules, onlyRsa, &f.roles).verify(forged, kNow);
    CHECK(r.reason == "unknown key");
    // ES256 token against a P-384 key, and EdDSA header on an ECDSA signature.
    auto es = makeJwtRaw(R"({"alg":"ES384"})", claims().dump(), "ES256", f.p256.get());
    CHECK_FALSE(f.verify(es).ok());
    auto ed = makeJwtRaw(R"({"alg":"EdDSA"})", claims().dump(), "ES256", f.p256.get());
    CHECK(f.verify(ed).reason == "bad signature");
}

TEST_CASE("'none' and unknown or disallowed algorithms are refused", "[token][verify]") {
    Fixture f;
    const std::string input =
        base64UrlEncode(R"({"alg":"none"})") + "." + base64UrlEncode(claims().dump());
    CHECK(f.verify(input + ".").reason == "token malformed");  // empty signature part
    CHECK(f.verify(input + ".AAAA").reason == "algorithm not allowed");
    auto lower = makeJwtRaw(R"({"alg":"hs256"})", claims().dump(), "HS256", nullptr, kSecret);
    CHECK(f.verify(lower).reason == "algorithm not allowed");
    f.rules.algorithms = AlgorithmSet();
    f.rules.algorithms.add(Algorithm::ES256);
    CHECK(f.verify(f.token("RS256", claims())).reason == "algorithm not allowed");
    CHECK(f.verify(f.token("ES256", claims())).ok());
}

TEST_CASE("time claims: exp required, nbf and iat with leeway", "[token][verify]") {
    Fixture f;
    f.rules.leewaySeconds = 30;
    CHECK(f.verify(f.token("ES256", {{"sub", "a"}})).reason == "token has no exp");
    CHECK(f.verify(f.token("ES256", claims({{"exp", "soon"}}))).reason ==
          "token malformed: exp is not a date");
    CHECK(f.verify(f.token("ES256", claims({{"exp", kNow - 31}}))).reason == "token expired");
    CHECK(f.verify(f.token("ES256", claims({{"exp", kNow - 30}}))).reason == "token expired");
    CHECK(f.verify(f.token("ES256", claims({{"exp", kNow - 29}}))).ok());
    CHECK(f.verify(f.token("ES256", claims({{"nbf", kNow + 31}}))).reason == "token not yet valid");
    CHECK(f.verify(f.token("ES256", claims({{"nbf", kNow + 30}}))).ok());
    CHECK(f.verify(f.token("ES256", claims({{"iat", kNow + 31}}))).reason ==
          "token issued in the future");
    CHECK(f.verify(f.token("ES256", claims({{"exp", kNow + 100.5}}))).expiresAt == kNow + 100);
    CHECK_FALSE(f.verify(f.token("ES256", claims({{"exp", true}}))).ok());
    CHECK_FALSE(f.verify(f.token("ES256", claims({{"exp", -5}}))).ok());
}

TEST_CASE("max_lifetime bounds exp - iat (or exp - now without iat)", "[token][verify]") {
    Fixture f;
    f.rules.maxLifetimeSeconds = 3600;
    CHECK(f.verify(f.token("EdDSA", claims({{"iat", kNow}, {"exp", kNow + 3600}}))).ok());
    CHECK(f.verify(f.token("EdDSA", claims({{"iat", kNow - 10}, {"exp", kNow + 3600}}))).reason ==
          "token lifetime above max_lifetime");
    CHECK(f.verify(f.token("EdDSA", {{"sub", "a"}, {"exp", kNow + 7200}})).reason ==
          "token lifetime above max_lifetime");
}

TEST_CASE("issuer and audience", "[token][verify]") {
    Fixture f;
    f.rules.issuer = "https://idp.example.com";
    f.rules.audience = "moat";
    auto good = claims({{"iss", "https://idp.example.com"}, {"aud", "moat"}});
    CHECK(f.verify(f.token("RS256", good)).ok());
    auto arr = claims({{"iss", "https://idp.example.com"}, {"aud", {"other", "moat"}}});
    CHECK(f.verify(f.token("RS256", arr)).ok());
    CHECK(f.verify(f.token("RS256", claims({{"aud", "moat"}}))).reason == "wrong issuer");
    CHECK(f.verify(f.token("RS256", claims({{"iss", "https://evil"}, {"aud", "moat"}}))).reason ==
          "wrong issuer");
    CHECK(f.verify(f.token("RS256", claims({{"iss", "https://idp.example.com"}}))).reason ==
          "wrong audience");
    CHECK(
        f.verify(f.token("RS256", claims({{"iss", "https://idp.example.com"}, {"aud", {"other"}}})))
            .reason == "wrong audience");
}

TEST_CASE("identity claim, prefix and roles", "[token][verify]") {
    Fixture f;
    f.rules.identityClaim = "email";
    f.rules.identityPrefix = "user:";
    f.rules.rolesClaim = "roles";
    auto r = f.verify(
        f.token("HS256", claims({{"email", "bob@example.com"},
                                 {"roles", {"operator", "admin", "device", "operator"}}})));
    REQUIRE(r.ok());
    CHECK(r.identity == "user:bob@example.com");
    CHECK(r.roles == std::vector<std::string>{"operator", "device"});
    CHECK(r.ignoredRoles == std::vector<std::string>{"admin"});
    CHECK(f.verify(f.token("HS256", claims())).reason == "token has no identity claim");
    CHECK(f.verify(f.token("HS256", claims({{"email", 42}}))).reason ==
          "token has no identity claim");
    CHECK(f.verify(f.token("HS256", claims({{"email", ""}}))).reason ==
          "token identity claim is not a usable identity");
    CHECK(f.verify(f.token("HS256", claims({{"email", "a\nb"}}))).reason ==
          "token identity claim is not a usable identity");
}

TEST_CASE("duplicate claims and header members are refused", "[token][verify]") {
    Fixture f;
    const std::string dupClaims =
        R"({"sub":"alice","sub":"admin","exp":)" + std::to_string(kNow + 60) + "}";
    auto t = makeJwtRaw(R"({"alg":"ES256"})", dupClaims, "ES256", f.p256.get());
    CHECK(f.verify(t).reason == "token malformed: claims duplicate key");
    auto h = makeJwtRaw(R"({"alg":"ES256","alg":"HS256"})", claims().dump(), "ES256", f.p256.get());
    CHECK(f.verify(h).reason == "token malformed: header duplicate key");
    CHECK(looksLikeJwt(h));  // still a token (refused as one), never re-read as a password
}

TEST_CASE("malformed tokens", "[token][verify]") {
    Fixture f;
    auto good = f.token("ES256", claims());
    CHECK(f.verify("").reason == "token malformed");
    CHECK(f.verify("a.b").reason == "token malformed");
    CHECK(f.verify("a.b.c.d").reason == "token malformed");
    CHECK(f.verify(good + "=").reason == "token malformed");
    CHECK(f.verify("Zh.e30.AAAA").reason == "token malformed: header is not base64url");
    CHECK(f.verify(base64UrlEncode("[1]") + ".e30.AAAA").reason ==
          "token malformed: header is not an object");
    CHECK(f.verify(base64UrlEncode(R"({"typ":"JWT"})") + ".e30.AAAA").reason ==
          "token malformed: header has no alg");
    CHECK(f.verify(std::string(kMaxTokenBytes + 1, 'a')).reason == "token too large");
    auto crit = makeJwtRaw(R"({"alg":"ES256","crit":["b64"],"b64":false})", claims().dump(),
                           "ES256", f.p256.get());
    CHECK(f.verify(crit).reason == "token uses critical header extensions");
    auto arrClaims = makeJwtRaw(R"({"alg":"ES256"})", "[1,2]", "ES256", f.p256.get());
    CHECK(f.verify(arrClaims).reason == "token malformed: claims are not an object");
}

TEST_CASE("kid selects the key; an unknown kid is reported for a JWKS refresh", "[token][verify]") {
    auto k1 = genEc("P-256");
    auto k2 = genEc("P-256");
    KeySet ks;
    std::string err;
    std::vector<std::string> skipped;
    REQUIRE(ks.addJwks(json{{"keys", {jwkOf(k1.get(), "k1"), jwkOf(k2.get(), "k2")}}}.dump(),
                       "jwks", err, skipped));
    ClaimRules rules;
    rules.algorithms.add(Algorithm::ES256);
    TokenVerifier v(rules, ks, nullptr);
    CHECK(v.verify(makeJwt("ES256", claims(), k2.get(), "", "k2"), kNow).ok());
    CHECK(v.verify(makeJwt("ES256", claims(), k2.get(), "", "k1"), kNow).reason == "bad signature");
    auto r = v.verify(makeJwt("ES256", claims(), k2.get(), "", "k3"), kNow);
    CHECK(r.reason == "unknown key");
    CHECK(r.unknownKid == std::optional<std::string>("k3"));
    CHECK(v.verify(makeJwt("ES256", claims(), k1.get()), kNow).ok());  // no kid: try all
    // A kid that is not a string.
    auto bad = makeJwtRaw(R"({"alg":"ES256","kid":7})", claims().dump(), "ES256", k1.get());
    CHECK(v.verify(bad, kNow).reason == "token malformed: kid is not a string");
}

TEST_CASE("JWT shape detection decides token or password", "[token][shape]") {
    Fixture f;
    CHECK(looksLikeJwt(f.token("RS256", claims())));
    CHECK_FALSE(looksLikeJwt("correct horse battery staple"));
    CHECK_FALSE(looksLikeJwt("a.b.c"));
    CHECK_FALSE(looksLikeJwt("pass.word.here"));
    CHECK_FALSE(looksLikeJwt(base64UrlEncode(R"({"typ":"JWT"})") + ".e30.AAAA"));
    CHECK_FALSE(looksLikeJwt(base64UrlEncode(R"({"alg":7})") + ".e30.AAAA"));
    CHECK(looksLikeJwt(base64UrlEncode(R"({"alg":"none"})") + ".e30.AAAA"));
}
