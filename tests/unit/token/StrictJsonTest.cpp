#include <catch2/catch.hpp>

#include "gateway/token/StrictJson.h"

using namespace moat::token;

TEST_CASE("strict JSON parses ordinary documents", "[token][json]") {
    auto r = parseStrictJson(R"({"a":1,"b":{"a":2,"c":[{"a":3},{"a":4}]}})");
    REQUIRE(r.value);
    CHECK((*r.value)["b"]["c"][1]["a"] == 4);
}

TEST_CASE("strict JSON refuses duplicate keys at any depth", "[token][json]") {
    CHECK(parseStrictJson(R"({"sub":"a","sub":"b"})").error == "duplicate key");
    CHECK(parseStrictJson(R"({"x":{"k":1,"k":1}})").error == "duplicate key");
    CHECK(parseStrictJson(R"({"x":[{"k":1,"k":2}]})").error == "duplicate key");
    // The same key in sibling objects is fine.
    CHECK(parseStrictJson(R"({"x":[{"k":1},{"k":2}],"k":3})").value);
    // Escapes that spell the same key are the same key.
    CHECK(parseStrictJson(R"({"sub":"a","s\u0075b":"b"})").error == "duplicate key");
}

TEST_CASE("strict JSON refuses garbage, trailing data, bad UTF-8 and deep nesting",
          "[token][json]") {
    CHECK_FALSE(parseStrictJson("").value);
    CHECK_FALSE(parseStrictJson("{").value);
    CHECK_FALSE(parseStrictJson(R"({"a":1} x)").value);
    CHECK_FALSE(parseStrictJson("{\"a\":\"\xff\"}").value);
    CHECK_FALSE(parseStrictJson(R"({"a":1,})").value);
    CHECK_FALSE(parseStrictJson("/*c*/{}").value);
    std::string deep(100, '[');
    deep += std::string(100, ']');
    CHECK(parseStrictJson(deep).error == "too deeply nested");
    std::string ok(kMaxJsonDepth - 1, '[');
    ok += std::string(kMaxJsonDepth - 1, ']');
    CHECK(parseStrictJson(ok).value);
}
