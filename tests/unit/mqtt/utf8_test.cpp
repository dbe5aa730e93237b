#include "gateway/mqtt/Utf8.h"

#include <string>

#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;

namespace {
std::string s(std::initializer_list<int> bytes) {
    std::string out;
    for (int b : bytes) out.push_back(char(b));
    return out;
}
}  // namespace

TEST_CASE("MQTT UTF-8: accepted") {
    CHECK(validMqttUtf8(""));
    CHECK(validMqttUtf8("plain/ascii"));
    CHECK(validMqttUtf8(s({0x41, 0xF0, 0xAA, 0x9B, 0x94})));  // spec 1.5.4 example "A𪛔"
    CHECK(validMqttUtf8("caf\xC3\xA9"));
    CHECK(validMqttUtf8("\xE2\x82\xAC"));          // U+20AC
    CHECK(validMqttUtf8("\xEF\xBB\xBF"));          // BOM is a valid character
    CHECK(validMqttUtf8("\xED\x9F\xBF"));          // U+D7FF, just below surrogates
    CHECK(validMqttUtf8("\xEE\x80\x80"));          // U+E000, just above
    CHECK(validMqttUtf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF
    CHECK(validMqttUtf8("\x01\x1F\x7F\xC2\x80"));  // controls: SHOULD NOT, not MUST NOT
    CHECK(validMqttUtf8("\xEF\xBF\xBF"));          // non-character U+FFFF: same
}

TEST_CASE("MQTT UTF-8: rejected") {
    CHECK_FALSE(validMqttUtf8(s({0x00})));
    CHECK_FALSE(validMqttUtf8(s({'a', 0x00, 'b'})));
    CHECK_FALSE(validMqttUtf8("\xC0\x80"));          // overlong U+0000
    CHECK_FALSE(validMqttUtf8("\xC1\xBF"));          // overlong 2-byte
    CHECK_FALSE(validMqttUtf8("\xE0\x80\xAF"));      // overlong '/'
    CHECK_FALSE(validMqttUtf8("\xE0\x9F\xBF"));      // overlong 3-byte
    CHECK_FALSE(validMqttUtf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte
    CHECK_FALSE(validMqttUtf8("\xED\xA0\x80"));      // U+D800
    CHECK_FALSE(validMqttUtf8("\xED\xBF\xBF"));      // U+DFFF
    CHECK_FALSE(validMqttUtf8("\xF4\x90\x80\x80"));  // U+110000
    CHECK_FALSE(validMqttUtf8("\xF5\x80\x80\x80"));
    CHECK_FALSE(validMqttUtf8("\xFF"));
    CHECK_FALSE(validMqttUtf8("\x80"));  // lone continuation
    CHECK_FALSE(validMqttUtf8("\xC3"));  // truncated
    CHECK_FALSE(validMqttUtf8("\xE2\x82"));
    CHECK_FALSE(validMqttUtf8("\xF0\xAA\x9B"));
    CHECK_FALSE(validMqttUtf8("\xC3\x28"));  // bad continuation
    CHECK_FALSE(validMqttUtf8("\xE2\x28\xA1"));
    CHECK_FALSE(validMqttUtf8("\xE2\x82\x28"));
}

TEST_CASE("topic names") {
    CHECK(validTopicName("a"));
    CHECK(validTopicName("/"));
    CHECK(validTopicName("sport/tennis/player1"));
    CHECK(validTopicName("$SYS/broker"));
    CHECK(validTopicName(" "));
    CHECK_FALSE(validTopicName(""));
    CHECK_FALSE(validTopicName("sport/+"));
    CHECK_FALSE(validTopicName("sport/#"));
    CHECK_FALSE(validTopicName("a+b"));
    CHECK_FALSE(validTopicName(s({'a', 0})));
    CHECK_FALSE(validTopicName(std::string(65536, 'a')));
    CHECK(validTopicName(std::string(65535, 'a')));
}

TEST_CASE("topic filters (spec 4.7)") {
    for (const char* ok : {"#", "+", "+/+", "/+", "sport/#", "sport/tennis/+", "sport/+/player1",
                           "+/tennis/#", "/", "//", "a//b", "$SYS/#", "$share/group/a/b",
                           "$share/g/#", "$share/g/+", "$share/g//", "$share"}) {
        INFO(ok);
        CHECK(validTopicFilter(ok));
    }
    for (const char* bad : {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "#/a", "a/#/",
                            "++", "+a", "a/b+", "##", "$share/", "$share/g", "$share/g/",
                            "$share//a", "$share/g+/a", "$share/g#/a", "$share/#/a"}) {
        INFO(bad);
        CHECK_FALSE(validTopicFilter(bad));
    }
    CHECK_FALSE(validTopicFilter(s({'a', 0})));
    CHECK_FALSE(validTopicFilter("\xED\xA0\x80"));
    CHECK(isSharedSubscription("$share/g/a"));
    CHECK_FALSE(isSharedSubscription("$shared/g/a"));
}
