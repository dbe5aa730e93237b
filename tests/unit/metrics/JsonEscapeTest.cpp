#include <catch2/catch.hpp>
#include <string>

#include "gateway/metrics/JsonEscape.h"

using moat::metrics::appendJsonString;
using moat::metrics::appendLogText;
using moat::metrics::quoteForLog;

namespace {

std::string json(std::string_view v, size_t max = std::string_view::npos) {
    std::string out;
    appendJsonString(out, v, max);
    return out;
}

std::string text(std::string_view v) {
    std::string out;
    appendLogText(out, v);
    return out;
}

}  // namespace

TEST_CASE("JSON strings escape quotes, backslashes and control characters") {
    CHECK(json("plain/topic") == "\"plain/topic\"");
    CHECK(json("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json("x\ny\rz\t") == "\"x\\ny\\rz\\t\"");
    CHECK(json(std::string_view("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\\u007f\"");
}

TEST_CASE("JSON strings keep valid UTF-8 and replace ill-formed bytes") {
    CHECK(json("caf\xC3\xA9") == "\"caf\xC3\xA9\"");
    CHECK(json("\xE2\x80\xA8") == "\"\\u2028\"");  // line separator
    CHECK(json("\xC2\x85") == "\"\\u0085\"");      // NEL: str.splitlines() splits there
    CHECK(json("\xC0\xAF") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");              // overlong '/'
    CHECK(json("\xED\xA0\x80").find("\xEF\xBF\xBD") != std::string::npos);  // surrogate
    CHECK(json("ab\xE2\x82") == "\"ab\xEF\xBF\xBD\xEF\xBF\xBD\"");          // truncated sequence
}

TEST_CASE("JSON strings are cut at a character boundary with an ellipsis") {
    CHECK(json("abcdef", 3) == "\"abc\xE2\x80\xA6\"");
    // 'é' is two bytes: a cut inside it backs off rather than emitting U+FFFD.
    CHECK(json("a\xC3\xA9z", 2) == "\"a\xE2\x80\xA6\"");
    CHECK(json("abc", 3) == "\"abc\"");
}

TEST_CASE("a forged audit line inside a value stays inside the value") {
    const std::string forged =
        "x\n{\"ts\":\"2026-01-01T00:00:00.000Z\",\"event\":\"connect\",\"identity\":\"admin\"}\n";
    const std::string quoted = quoteForLog(forged);
    CHECK(quoted.find('\n') == std::string::npos);
    CHECK(quoted.front() == '"');
    CHECK(quoted.back() == '"');
    CHECK(quoted.find("\\\"event\\\"") != std::string::npos);  // quotes escaped, not closing
}

TEST_CASE("quoteForLog cuts long values") {
    const std::string longValue(1000, 'a');
    CHECK(quoteForLog(longValue, 10) == "\"aaaaaaaaaa\xE2\x80\xA6\"");
}

TEST_CASE("log text never contains a line break or a control character") {
    CHECK(text("listener mqtts on 0.0.0.0:8883") == "listener mqtts on 0.0.0.0:8883");
    CHECK(text("a\nb\rc\td") == "a\\nb\\rc\\td");
    CHECK(text(std::string_view("\x00\x1b[31m\x7f", 7)) == "\\x00\\x1b[31m\\x7f");
    CHECK(text("\xE2\x80\xA8\xE2\x80\xA9") == "\\u2028\\u2029");
    CHECK(text("\xC2\x85\xC2\x9F\xC2\xA0") == "\\u0085\\u009f\xC2\xA0");  // C1 escaped, NBSP kept
    CHECK(text("caf\xC3\xA9") == "caf\xC3\xA9");
    CHECK(text("\xFF\xC3") == "\\xff\\xc3");  // not UTF-8
    // Backslashes are kept: quoted values are not escaped twice.
    CHECK(text(quoteForLog("a\nb")) == "\"a\\nb\"");
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        const std::string out = text(std::string_view(&c, 1));
        for (char o : out) {
            const auto u = static_cast<unsigned char>(o);
            CHECK((u >= 0x20 && u != 0x7F));
        }
    }
}
