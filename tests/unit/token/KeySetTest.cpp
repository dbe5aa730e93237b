#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "TestTokens.h"
#include "gateway/token/KeySet.h"

using namespace moat::token;
using namespace moat::token::test;

namespace {
std::string tempFile(const std::string& name, const std::string& content) {
    const std::string path =
        std::string("/tmp/moat_unit_token_") + std::to_string(getpid()) + "_" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}
}  // namespace

TEST_CASE("PEM public keys get the family of the key", "[token][keys]") {
    KeySet ks;
    std::string err;
    auto rsa = genRsa();
    auto p256 = genEc("P-256");
    auto p384 = genEc("P-384");
    auto ed = genEd25519();
    REQUIRE(ks.addPem(publicPem(rsa.get()), "rsa", err));
    REQUIRE(ks.addPem(publicPem(p256.get()), "p256", err));
    REQUIRE(ks.addPem(publicPem(p384.get()), "p384", err));
    REQUIRE(ks.addPem(publicPem(ed.get()), "ed", err));
    REQUIRE(ks.size() == 4);
    CHECK(ks.keys()[0]->family() == KeyFamily::Rsa);
    CHECK(ks.keys()[1]->family() == KeyFamily::EcP256);
    CHECK(ks.keys()[2]->family() == KeyFamily::EcP384);
    CHECK(ks.keys()[3]->family() == KeyFamily::Ed25519);
    CHECK(ks.keys()[0]->accepts(Algorithm::PS384));
    CHECK_FALSE(ks.keys()[0]->accepts(Algorithm::HS256));
    CHECK_FALSE(ks.keys()[1]->accepts(Algorithm::ES384));
}

TEST_CASE("PEM files Moat cannot use are refused with a reason", "[token][keys]") {
    KeySet ks;
    std::string err;
    CHECK_FALSE(ks.addPem(publicPem(genRsa(1024).get()), "short", err));
    CHECK(err.find("2048") != std::string::npos);
    CHECK_FALSE(ks.addPem(publicPem(genEc("secp256k1").get()), "k1", err));
    CHECK(err.find("secp256k1") != std::string::npos);
    CHECK_FALSE(
        ks.addPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "priv", err));
    CHECK(err.find("private key") != std::string::npos);
    CHECK_FALSE(ks.addPem("hello", "junk", err));
    CHECK_FALSE(ks.addPemFile("/nonexistent/key.pem", err));
    CHECK(ks.size() == 0);
}

TEST_CASE("HMAC secret files: raw bytes, one trailing newline dropped, never empty",
          "[token][keys]") {
    KeySet ks;
    std::string err;
    REQUIRE(ks.addHmacSecretFile(tempFile("s1", "0123456789abcdef0123456789abcdef\r\n"), err));
    CHECK(ks.keys()[0]->secret() == "0123456789abcdef0123456789abcdef");
    CHECK(ks.keys()[0]->family() == KeyFamily::Hmac);
    CHECK_FALSE(ks.addHmacSecretFile(tempFile("s2", "\n"), err));
    CHECK(err.find("empty") != std::string::npos);
}

TEST_CASE("JWKS: RSA, EC and OKP keys with kid and alg; unusable keys skipped", "[token][keys]") {
    auto rsa = genRsa();
    auto p256 = genEc("P-256");
    auto p384 = genEc("P-384");
    auto ed = genEd25519();
    nlohmann::json doc = {{"keys",
                           {jwkOf(rsa.get(), "r1", "RS256"),
                            jwkOf(p256.get(), "e1"),
                            jwkOf(p384.get(), "e2", "ES384"),
                            jwkOf(ed.get(), "o1", "EdDSA"),
                            {{"kty", "oct"}, {"k", "c2VjcmV0"}, {"kid", "h1"}},
                            {{"kty", "RSA"}, {"kid", "enc"}, {"use", "enc"}},
                            jwkOf(p256.get(), "bad-alg", "RS256"),
                            {{"kty", "EC"}, {"crv", "P-256"}, {"x", "AAAA"}, {"y", "AAAA"}}}}};
    KeySet ks;
    std::string err;
    std::vector<std::string> skipped;
    REQUIRE(ks.addJwks(doc.dump(), "jwks", err, skipped));
    CHECK(ks.size() == 4);
    CHECK(skipped.size() == 4);
    CHECK(ks.keys()[0]->alg() == Algorithm::RS256);
    CHECK_FALSE(ks.keys()[0]->accepts(Algorithm::RS512));  // its JWK alg pins it
    CHECK(ks.keys()[1]->accepts(Algorithm::ES256));
    bool known = false;
    auto c = ks.candidates(Algorithm::ES256, std::string("e1"), known);
    CHECK(known);
    CHECK(c.size() == 1);
    c = ks.candidates(Algorithm::ES256, std::string("zz"), known);
    CHECK_FALSE(known);
    CHECK(c.empty());
}

TEST_CASE("JWKS: an off-curve EC point is refused", "[token][keys]") {
    auto p256 = genEc("P-256");
    auto jwk = jwkOf(p256.get(), "e1");
    std::string y = *base64UrlDecode(jwk["y"].get<std::string>());
    y[31] ^= 1;
    jwk["y"] = base64UrlEncode(y);
    KeySet ks;
    std::string err;
    std::vector<std::string> skipped;
    REQUIRE(ks.addJwks(nlohmann::json{{"keys", {jwk}}}.dump(), "jwks", err, skipped));
    CHECK(ks.size() == 0);
    CHECK(skipped.size() == 1);
}

TEST_CASE("JWKS documents that are unusable as a whole", "[token][keys]") {
    KeySet ks;
    std::string err;
    std::vector<std::string> skipped;
    CHECK_FALSE(ks.addJwks("[]", "j", err, skipped));
    CHECK_FALSE(ks.addJwks(R"({"keys":{}})", "j", err, skipped));
    CHECK_FALSE(ks.addJwks(R"({"keys":[],"keys":[]})", "j", err, skipped));
    CHECK(err.find("duplicate") != std::string::npos);
    CHECK_FALSE(ks.addJwks("not json", "j", err, skipped));
}
