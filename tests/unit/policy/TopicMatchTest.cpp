#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "policy/TopicMatch.h"
#include "tests/unit/policy/ReferenceMatch.h"

using namespace moat::policy;
using namespace std::literals;

namespace {

struct MatchCase {
    std::string_view filter;
    std::string_view topic;
    bool expected;
};

// MQTT 3.1.1 / 5.0 section 4.7 examples, plus edge cases around empty levels and `$`.
const MatchCase kMatchTable[] = {
    // 4.7.1.2 multi-level wildcard
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/#", "sport", true},
    {"#", "sport/tennis", true},
    {"#", "/", true},
    {"#", "a", true},
    {"sport/tennis/#", "sport/tennis", true},
    {"sport/tennis/#", "sport/tennisx", false},
    {"sport/tennis#", "sport/tennis", false},                     // invalid filter
    {"sport/tennis/#/ranking", "sport/tennis/x/ranking", false},  // invalid filter
    {"sport/#/", "sport/x/", false},                              // invalid filter
    // 4.7.1.3 single-level wildcard
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+", "/finance", false},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/+/#", "a", false},
    {"sport+", "sport", false},  // invalid filter
    {"+", "", false},            // invalid topic
    {"", "", false},
    {"a/+", "a/+", false},  // wildcard in a topic name
    {"a/#", "a/#", false},
    // 4.7.2 topics beginning with $
    {"#", "$SYS", false},
    {"#", "$SYS/broker", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"+/#", "$SYS/x", false},
    {"+", "$", false},
    {"$", "$", true},
    {"a/+", "a/$x", true},  // `$` only matters at the first level
    {"a/#", "a/$x/y", true},
    {"$share/g/#", "$share/g/x", true},  // as a plain filter, `$share` is just a `$` level
    // literals, empty levels
    {"a/b", "a/b", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b/", true},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"/", "/", true},
    {"+/+", "/", true},
    {"+", "/", false},
    {"a/b", "A/b", false},
    {"a", "a\0"sv, false},
    {"a\0"sv, "a", false},
    {"a/b", "a", false},
    {"a", "a/b", false},
};

}  // namespace

TEST_CASE("topicMatches: spec table", "[topic]") {
    for (const MatchCase& c : kMatchTable) {
        INFO("filter '" << c.filter << "' topic '" << c.topic << "'");
        CHECK(topicMatches(c.filter, c.topic) == c.expected);
        CHECK(reference::matches(c.filter, c.topic) == c.expected);
    }
}

TEST_CASE("validity of names and filters", "[topic]") {
    CHECK(isValidTopicName("a"));
    CHECK(isValidTopicName("/"));
    CHECK(isValidTopicName("$SYS/x"));
    CHECK_FALSE(isValidTopicName(""));
    CHECK_FALSE(isValidTopicName("a+"));
    CHECK_FALSE(isValidTopicName("a/#"));
    CHECK_FALSE(isValidTopicName("a\0b"sv));
    CHECK(isValidTopicName(std::string(65535, 'x')));
    CHECK_FALSE(isValidTopicName(std::string(65536, 'x')));

    CHECK(isValidTopicFilter("#"));
    CHECK(isValidTopicFilter("+"));
    CHECK(isValidTopicFilter("+/+/#"));
    CHECK(isValidTopicFilter("/"));
    CHECK(isValidTopicFilter("a//#"));
    CHECK_FALSE(isValidTopicFilter(""));
    CHECK_FALSE(isValidTopicFilter("#/a"));
    CHECK_FALSE(isValidTopicFilter("a#"));
    CHECK_FALSE(isValidTopicFilter("a/b+"));
    CHECK_FALSE(isValidTopicFilter("++"));
    CHECK_FALSE(isValidTopicFilter("a/#/"));
    CHECK_FALSE(isValidTopicFilter("a\0"sv));
    CHECK_FALSE(isValidTopicFilter(std::string(65536, 'x')));
}

TEST_CASE("filterCovers: cases", "[topic]") {
    struct Case {
        std::string_view outer, inner;
        bool expected;
    };
    const Case cases[] = {
        {"devices/#", "devices/a/+", true},
        {"devices/#", "devices", true},
        {"devices/#", "devices/#", true},
        {"devices/#", "#", false},
        {"devices/+", "devices/#", false},
        {"devices/+/x", "devices/#", false},
        {"#", "a/b", true},
        {"#", "+/#", true},
        {"#", "#", true},
        {"#", "$SYS/x", false},
        {"#", "$SYS/#", false},
        {"+/x", "$SYS/x", false},
        {"+/#", "#", true},
        {"+/#", "+", true},
        {"+/+/#", "#", false},    // misses `a`
        {"a/+/#", "a/#", false},  // misses `a`
        {"a/#", "a/+/#", true},
        {"$SYS/#", "$SYS/broker/+", true},
        {"$SYS/#", "+/broker",
         false},  // `+/broker` does not match `$SYS/broker`, but matches `x/broker`
        {"+", "a", true},
        {"+", "$x", false},
        {"+", "+", true},
        {"a", "+", false},
        {"a/b", "a/b", true},
        {"a/b", "a/c", false},
        {"a/+", "a/+/b", false},
        {"a/+/b", "a/+", false},
        {"+/+", "+/#", false},
        {"a/#", "a", true},
        {"a/#", "a/", true},
        {"a/", "a/#", false},
        {"a/+", "a/", true},
        {"a", "a/#", false},
        {"bad#", "a", false},
        {"#", "bad#", false},
    };
    for (const Case& c : cases) {
        INFO("outer '" << c.outer << "' inner '" << c.inner << "'");
        CHECK(filterCovers(c.outer, c.inner) == c.expected);
    }
}

TEST_CASE("filtersOverlap: cases", "[topic]") {
    struct Case {
        std::string_view a, b;
        bool expected;
    };
    const Case cases[] = {
        {"devices/#", "devices/secret/#", true},
        {"devices/+/x", "devices/secret/#", true},
        {"devices/+/x", "devices/secret/y", false},
        {"#", "$SYS/#", false},
        {"+/#", "$SYS/x", false},
        {"$SYS/#", "$SYS", true},
        {"a/#", "a", true},
        {"a/+", "a", false},
        {"+", "#", true},
        {"+/+", "a/b/c", false},
        {"a/+/c", "+/b/+", true},
        {"a", "b", false},
        {"#", "#", true},
        {"bad#", "#", false},
    };
    for (const Case& c : cases) {
        INFO("a '" << c.a << "' b '" << c.b << "'");
        CHECK(filtersOverlap(c.a, c.b) == c.expected);
        CHECK(filtersOverlap(c.b, c.a) == c.expected);
    }
}

TEST_CASE("shareInnerFilter", "[topic]") {
    CHECK(shareInnerFilter("$share/g/f/#") == "f/#");
    CHECK(shareInnerFilter("$share/group/a") == "a");
    CHECK(shareInnerFilter("$share/g/$SYS/#") == "$SYS/#");
    CHECK(shareInnerFilter("a/b") == "a/b");
    CHECK(shareInnerFilter("#") == "#");
    CHECK(shareInnerFilter("$sharex/g/f") == "$sharex/g/f");
    CHECK(shareInnerFilter("$share").compare("$share") == 0);  // not `$share/`: a plain filter
    // Malformed shared filters select nothing.
    CHECK(shareInnerFilter("$share/").empty());
    CHECK(shareInnerFilter("$share/g").empty());
    CHECK(shareInnerFilter("$share//f").empty());
    CHECK(shareInnerFilter("$share/g/").empty());
    CHECK(shareInnerFilter("$share/+/f").empty());
    CHECK(shareInnerFilter("$share/#/f").empty());
    CHECK(shareInnerFilter("$share/g+/f").empty());
    CHECK(isSharedFilter("$share/g/f"));
    CHECK_FALSE(isSharedFilter("$SYS/x"));
}

// ---------------------------------------------------------------- randomised cross-checks

namespace {

// Small alphabets make collisions (and so interesting cases) frequent. "c" never appears in
// filters, so `+` and literals are told apart; "$x" and "" exercise `$` and empty levels.
const char* const kTopicLevels[] = {"a", "b", "c", "$x", ""};
const char* const kFilterLevels[] = {"a", "b", "$x", "", "+", "#"};

std::string randomTopic(std::mt19937& rng, int maxLevels) {
    const int n = std::uniform_int_distribution<int>(1, maxLevels)(rng);
    std::string t;
    for (int i = 0; i < n; ++i) {
        if (i) t += '/';
        t += kTopicLevels[std::uniform_int_distribution<int>(0, 4)(rng)];
    }
    return t;
}

std::string randomFilter(std::mt19937& rng, int maxLevels) {
    const int n = std::uniform_int_distribution<int>(1, maxLevels)(rng);
    std::string f;
    for (int i = 0; i < n; ++i) {
        if (i) f += '/';
        const char* level = kFilterLevels[std::uniform_int_distribution<int>(0, 5)(rng)];
        // Mostly valid filters: `#` only last (an occasional invalid one is fine too).
        if (std::string_view(level) == "#" && i + 1 < n && rng() % 8 != 0) level = "+";
        f += level;
    }
    return f;
}

void enumerateTopics(std::string prefix, int depth, int maxDepth, std::vector<std::string>& out) {
    for (const char* level : kTopicLevels) {
        std::string t = prefix.empty() && depth == 0 ? std::string(level) : prefix + "/" + level;
        out.push_back(t);
        if (depth + 1 < maxDepth) enumerateTopics(t, depth + 1, maxDepth, out);
    }
}

// Every topic over kTopicLevels with up to 4 levels: enough to witness any difference between
// filters of up to 3 levels (one level deeper than either filter reaches).
const std::vector<std::string>& allTopics() {
    static const std::vector<std::string> topics = [] {
        std::vector<std::string> out;
        enumerateTopics("", 0, 4, out);
        return out;
    }();
    return topics;
}

}  // namespace

TEST_CASE("topicMatches agrees with the reference matcher", "[topic][random]") {
    std::mt19937 rng(12345);
    for (int i = 0; i < 200000; ++i) {
        const std::string f = randomFilter(rng, 5);
        const std::string t = randomTopic(rng, 5);
        INFO("filter '" << f << "' topic '" << t << "'");
        REQUIRE(topicMatches(f, t) == reference::matches(f, t));
    }
}

TEST_CASE("filterCovers and filtersOverlap agree with brute-force enumeration", "[topic][random]") {
    std::mt19937 rng(777);
    const auto& topics = allTopics();
    REQUIRE(topics.size() == 5 + 25 + 125 + 625);
    std::vector<std::vector<std::string>> splitTopics;
    for (const std::string& t : topics) {
        if (reference::validName(t)) splitTopics.push_back(reference::split(t));
    }
    REQUIRE(splitTopics.size() == topics.size() - 1);  // all but ""
    for (int i = 0; i < 10000; ++i) {
        const std::string outer = randomFilter(rng, 3);
        const std::string inner = randomFilter(rng, 3);
        const bool valid = reference::validFilter(outer) && reference::validFilter(inner);
        bool covers = valid;
        bool overlap = false;
        const auto o = reference::split(outer);
        const auto in = reference::split(inner);
        for (size_t k = 0; valid && k < splitTopics.size(); ++k) {
            const bool inMatch = reference::matchesSplit(in, splitTopics[k]);
            const bool outMatch = reference::matchesSplit(o, splitTopics[k]);
            if (inMatch && !outMatch) covers = false;
            if (inMatch && outMatch) overlap = true;
        }
        INFO("outer '" << outer << "' inner '" << inner << "'");
        REQUIRE(filterCovers(outer, inner) == covers);
        REQUIRE(filtersOverlap(outer, inner) == overlap);
    }
}
