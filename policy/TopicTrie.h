#pragma once
// A trie of topic filters, one node per level, answering "which is the first (lowest id)
// filter that matches / covers / overlaps this input" in one walk over the input's levels.
//
// Built once (policy compile, or per connection for placeholder rules), then read-only and
// safe to share between threads. Queries never allocate: literal children are found through
// one open-addressing table keyed by (parent node, level label); labels live in one arena.
//
// Every query is a lock-step walk (node depth == input level), so it visits each trie node at
// most once, and it prunes subtrees whose lowest rule id cannot beat the best found so far.
// Recursion depth is bounded by kMaxLevels, which Policy enforces on every rule.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::policy {

class TopicTrie {
  public:
    using RuleId = uint32_t;
    static constexpr RuleId kNoRule = UINT32_MAX;
    static constexpr size_t kMaxLevels = 128;

    TopicTrie();

    // Adds a filter. Precondition: isValidTopicFilter(filter), at most kMaxLevels levels.
    // Several filters may share an id; the same filter may be added under several ids.
    void insert(std::string_view filter, RuleId rule);

    bool empty() const { return rules_ == 0; }
    size_t ruleCount() const { return rules_; }
    size_t nodeCount() const { return nodes_.size(); }

    // Lowest id among filters that match the topic name `topic` (kNoRule if none) and are
    // below `bound`. Precondition: isValidTopicName(topic).
    RuleId firstMatch(std::string_view topic, RuleId bound = kNoRule) const;

    // Lowest id among filters that cover the filter `filter` (see filterCovers).
    // Precondition: isValidTopicFilter(filter).
    RuleId firstCover(std::string_view filter, RuleId bound = kNoRule) const;

    // Lowest id among filters that overlap the filter `filter` (see filtersOverlap).
    // Precondition: isValidTopicFilter(filter).
    RuleId firstOverlap(std::string_view filter, RuleId bound = kNoRule) const;

  private:
    static constexpr uint32_t kNil = UINT32_MAX;

    struct Node {
        uint32_t parent = kNil;
        uint32_t labelOffset = 0;
        uint32_t labelLength = 0;
        uint32_t hash = 0;
        uint32_t plus = kNil;          // the `+` child
        uint32_t firstLiteral = kNil;  // literal children, linked through nextSibling
        uint32_t nextSibling = kNil;
        RuleId endRule = kNoRule;     // lowest id of filters ending at this node
        RuleId hashRule = kNoRule;    // lowest id of filters ending in `/#` below this node
        RuleId subtreeMin = kNoRule;  // lowest id at or below this node
    };

    struct Walk;

    std::string_view label(const Node& n) const {
        return std::string_view(labels_).substr(n.labelOffset, n.labelLength);
    }
    uint32_t findLiteral(uint32_t parent, std::string_view level) const;
    uint32_t addLiteral(uint32_t parent, std::string_view level);
    void growTable();
    void noteRule(uint32_t node, RuleId rule);
    // The literal, empty first level (filters "/..."): a topic ending there would be "".
    bool isEmptyFirstLiteral(uint32_t node) const;

    void match(uint32_t node, Walk& w, size_t pos, bool more, bool root) const;
    void cover(uint32_t node, Walk& w, size_t pos, bool more, bool root) const;
    void overlap(uint32_t node, Walk& w, size_t pos, bool more, bool root) const;

    std::vector<Node> nodes_;
    std::string labels_;
    std::vector<uint32_t> table_;  // node indices of literal nodes, kNil = empty slot
    size_t literals_ = 0;
    size_t rules_ = 0;
    RuleId rootNonDollarMin_ = kNoRule;  // lowest id matching some non-`$` topic
};

}  // namespace moat::policy
