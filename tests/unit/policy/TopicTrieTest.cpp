#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "policy/TopicMatch.h"
#include "policy/TopicTrie.h"

using namespace moat::policy;

namespace {

const char* const kLevels[] = {"a", "b", "$x", "", "+", "#", "c"};

std::string randomFilter(std::mt19937& rng) {
    const int n = std::uniform_int_distribution<int>(1, 4)(rng);
    std::string f;
    for (int i = 0; i < n; ++i) {
        if (i) f += '/';
        std::string_view level = kLevels[std::uniform_int_distribution<int>(0, 5)(rng)];
        if (level == "#" && i + 1 < n) level = "+";
        f += level;
    }
    return isValidTopicFilter(f) ? f : randomFilter(rng);  // "" alone is not a filter
}

std::string randomInput(std::mt19937& rng, bool filter) {
    if (filter) return randomFilter(rng);
    const int n = std::uniform_int_distribution<int>(1, 5)(rng);
    std::string t;
    for (int i = 0; i < n; ++i) {
        if (i) t += '/';
        const int pick = std::uniform_int_distribution<int>(0, 4)(rng);
        t += pick == 4 ? "c" : kLevels[pick];
    }
    return isValidTopicName(t) ? t : randomInput(rng, false);
}

template <typename Pred>
TopicTrie::RuleId linearFirst(const std::vector<std::string>& filters,
                              const std::vector<TopicTrie::RuleId>& ids, TopicTrie::RuleId bound,
                              Pred pred) {
    TopicTrie::RuleId best = TopicTrie::kNoRule;
    for (size_t i = 0; i < filters.size(); ++i) {
        if (ids[i] < bound && ids[i] < best && pred(filters[i])) best = ids[i];
    }
    return best;
}

}  // namespace

TEST_CASE("TopicTrie: basic queries", "[trie]") {
    TopicTrie trie;
    CHECK(trie.empty());
    CHECK(trie.firstMatch("a") == TopicTrie::kNoRule);
    trie.insert("devices/+/telemetry/#", 0);
    trie.insert("devices/d1/status", 1);
    trie.insert("#", 2);
    trie.insert("$SYS/#", 3);
    CHECK_FALSE(trie.empty());
    CHECK(trie.ruleCount() == 4);

    CHECK(trie.firstMatch("devices/d1/telemetry") == 0);
    CHECK(trie.firstMatch("devices/d1/status") == 1);
    CHECK(trie.firstMatch("x") == 2);
    CHECK(trie.firstMatch("$SYS/x") == 3);
    CHECK(trie.firstMatch("$SYS") == 3);
    CHECK(trie.firstMatch("devices/d1/telemetry", 0) == TopicTrie::kNoRule);
    CHECK(trie.firstMatch("devices/d1/status", 1) == TopicTrie::kNoRule);  // `#` is id 2

    CHECK(trie.firstCover("devices/+/telemetry/x/#") == 0);
    CHECK(trie.firstCover("devices/#") == 2);
    CHECK(trie.firstCover("$SYS/+") == 3);
    CHECK(trie.firstOverlap("$SYS/#") == 3);
    CHECK(trie.firstOverlap("+/d1/status") == 1);
    CHECK(trie.firstOverlap("devices/#") == 0);
}

TEST_CASE("TopicTrie agrees with the pairwise functions", "[trie][random]") {
    std::mt19937 rng(4242);
    for (int round = 0; round < 300; ++round) {
        const int count = std::uniform_int_distribution<int>(1, 30)(rng);
        std::vector<std::string> filters;
        std::vector<TopicTrie::RuleId> ids;
        TopicTrie trie;
        for (int i = 0; i < count; ++i) {
            filters.push_back(randomFilter(rng));
            // Ids are shuffled-ish and may repeat, as placeholder expansion can produce.
            ids.push_back(std::uniform_int_distribution<TopicTrie::RuleId>(0, count)(rng));
            trie.insert(filters.back(), ids.back());
        }
        std::string listing;
        for (size_t i = 0; i < filters.size(); ++i) {
            listing += std::to_string(ids[i]) + ":'" + filters[i] + "' ";
        }
        INFO("trie " << listing);
        for (int q = 0; q < 200; ++q) {
            const TopicTrie::RuleId bound =
                rng() % 3 == 0 ? std::uniform_int_distribution<TopicTrie::RuleId>(0, count)(rng)
                               : TopicTrie::kNoRule;
            const std::string topic = randomInput(rng, false);
            INFO("topic '" << topic << "' bound " << bound);
            REQUIRE(trie.firstMatch(topic, bound) ==
                    linearFirst(filters, ids, bound,
                                [&](const std::string& f) { return topicMatches(f, topic); }));
            const std::string filter = randomInput(rng, true);
            INFO("filter '" << filter << "'");
            REQUIRE(trie.firstCover(filter, bound) ==
                    linearFirst(filters, ids, bound,
                                [&](const std::string& f) { return filterCovers(f, filter); }));
            REQUIRE(trie.firstOverlap(filter, bound) ==
                    linearFirst(filters, ids, bound,
                                [&](const std::string& f) { return filtersOverlap(f, filter); }));
        }
    }
}

TEST_CASE("TopicTrie: many literal siblings grow the table", "[trie]") {
    TopicTrie trie;
    for (uint32_t i = 0; i < 5000; ++i) trie.insert("d/" + std::to_string(i) + "/x", i);
    for (uint32_t i = 0; i < 5000; i += 97) {
        CHECK(trie.firstMatch("d/" + std::to_string(i) + "/x") == i);
        CHECK(trie.firstMatch("d/" + std::to_string(i) + "/y") == TopicTrie::kNoRule);
    }
    CHECK(trie.firstOverlap("d/+/x") == 0);
    CHECK(trie.firstCover("d/+/x") == TopicTrie::kNoRule);
}

TEST_CASE("TopicTrie: deep topics beyond the trie depth", "[trie]") {
    TopicTrie trie;
    trie.insert("a/#", 0);
    std::string deep = "a";
    for (int i = 0; i < 10000; ++i) deep += "/x";
    CHECK(trie.firstMatch(deep) == 0);
    CHECK(trie.firstCover(deep + "/#") == 0);
    CHECK(trie.firstMatch("b" + deep.substr(1)) == TopicTrie::kNoRule);
}
