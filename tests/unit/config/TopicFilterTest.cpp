// Config-time topic filter and UTF-8 validation.

#include <catch2/catch.hpp>

#include "gateway/config/TopicFilter.h"

using namespace moat::config;

TEST_CASE("valid topic filters") {
    for (const char* ok :
         {"#", "+", "a", "a/b", "a/+/c", "a/#", "+/+", "/", "a//b", "/a", "a/",
          "$SYS/broker/clients/#", "devices/%u/telemetry/#", "c/%c", "%u", "caf\xC3\xA9/+"}) {
        INFO(ok);
        CHECK(topicFilterError(ok, true).empty());
    }
}

TEST_CASE("invalid topic filters say why") {
    CHECK(topicFilterError("", true) == "empty topic filter");
    CHECK(topicFilterError("a/#/b", true) == "'#' must be the whole last level");
    CHECK(topicFilterError("a#", true) == "'#' must be the whole last level");
    CHECK(topicFilterError("a/b+", true) == "'+' must be a whole level");
    CHECK(topicFilterError("a/%U", true) ==
          "only %u and %c placeholders are allowed, each as a whole level");
    CHECK(topicFilterError("a/x%u", true) ==
          "only %u and %c placeholders are allowed, each as a whole level");
    CHECK(topicFilterError("a/%u", false) == "placeholders (%u, %c) are not allowed here");
    CHECK(topicFilterError(std::string("a\0b", 3), true) ==
          "topic filter is not valid UTF-8 or contains U+0000");
    CHECK_FALSE(topicFilterError(std::string(65536, 'a'), true).empty());
}

TEST_CASE("MQTT UTF-8") {
    CHECK(isValidMqttUtf8(""));
    CHECK(isValidMqttUtf8("plain"));
    CHECK(isValidMqttUtf8("\xF0\x9F\x98\x80"));        // U+1F600
    CHECK_FALSE(isValidMqttUtf8("\xC0\xAF"));          // overlong '/'
    CHECK_FALSE(isValidMqttUtf8("\xED\xA0\x80"));      // surrogate
    CHECK_FALSE(isValidMqttUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(isValidMqttUtf8("\xE2\x82"));          // truncated
    CHECK_FALSE(isValidMqttUtf8("\x80"));              // lone continuation
    CHECK_FALSE(isValidMqttUtf8(std::string(1, '\0')));
}
