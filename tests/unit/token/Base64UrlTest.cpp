#include <catch2/catch.hpp>

#include "gateway/token/Base64Url.h"

using namespace moat::token;

TEST_CASE("base64url round-trips every length", "[token][base64]") {
    std::string data;
    for (int i = 0; i < 70; ++i) {
        auto enc = base64UrlEncode(data);
        CHECK(enc.find('=') == std::string::npos);
        auto dec = base64UrlDecode(enc);
        REQUIRE(dec);
        CHECK(*dec == data);
        data.push_back(static_cast<char>(i * 37 + 11));
    }
}

TEST_CASE("base64url known answers (RFC 4648 vectors without padding)", "[token][base64]") {
    CHECK(base64UrlEncode("f") == "Zg");
    CHECK(base64UrlEncode("fo") == "Zm8");
    CHECK(base64UrlEncode("foo") == "Zm9v");
    CHECK(base64UrlEncode("foobar") == "Zm9vYmFy");
    CHECK(base64UrlEncode("\xfb\xff") == "-_8");
}

TEST_CASE("base64url refuses what is not canonical base64url", "[token][base64]") {
    CHECK_FALSE(base64UrlDecode("Zg=="));   // padding
    CHECK_FALSE(base64UrlDecode("+/8"));    // standard alphabet
    CHECK_FALSE(base64UrlDecode("Zm 9v"));  // whitespace
    CHECK_FALSE(base64UrlDecode("Z"));      // 1 mod 4
    CHECK_FALSE(base64UrlDecode("Zh"));     // non-zero unused bits ("Zg" is canonical)
    CHECK_FALSE(base64UrlDecode("Zm9"));    // non-zero unused bits ("Zm8" is canonical)
    CHECK(base64UrlDecode("") == std::string());
    CHECK(isBase64UrlAlphabet("abc-_09"));
    CHECK_FALSE(isBase64UrlAlphabet("ab.c"));
}
