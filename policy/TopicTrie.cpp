#include "policy/TopicTrie.h"

#include <algorithm>

#include "policy/TopicLevels.h"

namespace moat::policy {

namespace {

uint32_t hashLevel(uint32_t parent, std::string_view level) {
    // FNV-1a over the label, seeded with the parent index. The table is built from the
    // operator's rules only; client input merely probes it, so flooding is not a concern.
    uint32_t h = 2166136261u ^ (parent * 0x9E3779B1u);
    for (unsigned char c : level) {
        h ^= c;
        h *= 16777619u;
    }
    return h ^ (h >> 15);
}

}  // namespace

struct TopicTrie::Walk {
    std::string_view input;
    RuleId best;

    // Takes the level at `pos`; updates pos/more to the next one.
    std::string_view take(size_t& pos, bool& more) const {
        TopicLevels levels(input, pos, true);
        const std::string_view level = levels.take();
        pos = levels.position();
        more = levels.more();
        return level;
    }
    void consider(RuleId id) { best = std::min(best, id); }
};

TopicTrie::TopicTrie() : nodes_(1), table_(16, kNil) {}

uint32_t TopicTrie::findLiteral(uint32_t parent, std::string_view level) const {
    const uint32_t h = hashLevel(parent, level);
    const size_t mask = table_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const uint32_t idx = table_[i];
        if (idx == kNil) return kNil;
        const Node& n = nodes_[idx];
        if (n.hash == h && n.parent == parent && label(n) == level) return idx;
    }
}

void TopicTrie::growTable() {
    std::vector<uint32_t> bigger(table_.size() * 2, kNil);
    const size_t mask = bigger.size() - 1;
    for (uint32_t idx : table_) {
        if (idx == kNil) continue;
        size_t i = nodes_[idx].hash & mask;
        while (bigger[i] != kNil) i = (i + 1) & mask;
        bigger[i] = idx;
    }
    table_.swap(bigger);
}

uint32_t TopicTrie::addLiteral(uint32_t parent, std::string_view level) {
    if (const uint32_t found = findLiteral(parent, level); found != kNil) return found;
    if ((literals_ + 1) * 2 > table_.size()) growTable();
    Node n;
    n.parent = parent;
    n.labelOffset = static_cast<uint32_t>(labels_.size());
    n.labelLength = static_cast<uint32_t>(level.size());
    n.hash = hashLevel(parent, level);
    n.nextSibling = nodes_[parent].firstLiteral;
    labels_.append(level);
    const auto idx = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(n);
    nodes_[parent].firstLiteral = idx;
    const size_t mask = table_.size() - 1;
    size_t i = n.hash & mask;
    while (table_[i] != kNil) i = (i + 1) & mask;
    table_[i] = idx;
    ++literals_;
    return idx;
}

bool TopicTrie::isEmptyFirstLiteral(uint32_t node) const {
    const Node& n = nodes_[node];
    return n.parent == 0 && node != nodes_[0].plus && n.labelLength == 0;
}

void TopicTrie::noteRule(uint32_t node, RuleId rule) {
    for (uint32_t i = node; i != kNil; i = nodes_[i].parent) {
        if (nodes_[i].subtreeMin <= rule) break;  // ancestors already hold something lower
        nodes_[i].subtreeMin = rule;
    }
}

void TopicTrie::insert(std::string_view filter, RuleId rule) {
    ++rules_;
    uint32_t node = 0;
    TopicLevels levels(filter);
    bool first = true;
    while (levels.more()) {
        const std::string_view level = levels.take();
        if (first) {
            first = false;
            if (!startsWithDollar(level)) rootNonDollarMin_ = std::min(rootNonDollarMin_, rule);
        }
        if (level == "#") {
            nodes_[node].hashRule = std::min(nodes_[node].hashRule, rule);
            noteRule(node, rule);
            return;
        }
        if (level == "+") {
            if (nodes_[node].plus == kNil) {
                Node n;
                n.parent = node;
                const auto idx = static_cast<uint32_t>(nodes_.size());
                nodes_.push_back(n);
                nodes_[node].plus = idx;
            }
            node = nodes_[node].plus;
        } else {
            node = addLiteral(node, level);
        }
    }
    nodes_[node].endRule = std::min(nodes_[node].endRule, rule);
    noteRule(node, rule);
}

// match / cover / overlap mirror topicMatches / filterCovers / filtersOverlap (TopicMatch.cpp)
// over every filter of the trie at once; `root` marks the first level, where `$` applies.

void TopicTrie::match(uint32_t node, Walk& w, size_t pos, bool more, bool root) const {
    const Node& n = nodes_[node];
    if (n.subtreeMin >= w.best) return;
    if (!more) {
        w.consider(n.endRule);
        if (!root) w.consider(n.hashRule);
        return;
    }
    const std::string_view level = w.take(pos, more);
    if (!(root && startsWithDollar(level))) {
        w.consider(n.hashRule);
        if (n.plus != kNil) match(n.plus, w, pos, more, false);
    }
    if (const uint32_t child = findLiteral(node, level); child != kNil) {
        match(child, w, pos, more, false);
    }
}

void TopicTrie::cover(uint32_t node, Walk& w, size_t pos, bool more, bool root) const {
    const Node& n = nodes_[node];
    if (n.subtreeMin >= w.best) return;
    if (!more) {
        w.consider(n.endRule);
        if (!root) w.consider(n.hashRule);
        return;
    }
    const size_t levelStart = pos;
    const std::string_view level = w.take(pos, more);
    if (level == "#") {
        w.consider(n.hashRule);
        // `+/#` covers `#`: every topic has a first level (and neither matches `$` topics).
        // Likewise `/+/#` covers `/#`, which cannot match its parent, the empty topic ""
        // (a `#` starting at offset 1 follows an empty first level).
        if ((root || levelStart == 1) && n.plus != kNil) w.consider(nodes_[n.plus].hashRule);
        return;
    }
    if (level == "+") {
        w.consider(n.hashRule);
        if (n.plus != kNil) cover(n.plus, w, pos, more, false);
        return;
    }
    if (!(root && startsWithDollar(level))) {
        w.consider(n.hashRule);
        if (n.plus != kNil) cover(n.plus, w, pos, more, false);
    }
    if (const uint32_t child = findLiteral(node, level); child != kNil) {
        cover(child, w, pos, more, false);
    }
}

void TopicTrie::overlap(uint32_t node, Walk& w, size_t pos, bool more, bool root) const {
    const Node& n = nodes_[node];
    if (n.subtreeMin >= w.best) return;
    if (!more) {
        w.consider(n.endRule);
        // `P/#` shares the topic P with the input, unless P is no topic: at the root, or the
        // empty first level ("/#" vs "+" share nothing: "" is not a topic).
        if (!root && !isEmptyFirstLiteral(node)) w.consider(n.hashRule);
        return;
    }
    const size_t levelStart = pos;
    const std::string_view level = w.take(pos, more);
    if (level == "#") {
        // Every filter at or below this node shares a topic with `.../#` (including filters
        // ending here: `#` matches its parent), except `$` filters against a first-level `#`,
        // and filters ending at an empty first level (their only topic would be "").
        if (root) {
            w.consider(rootNonDollarMin_);
        } else if (levelStart == 1 || isEmptyFirstLiteral(node)) {
            w.consider(n.hashRule);
            if (n.plus != kNil) w.consider(nodes_[n.plus].subtreeMin);
            for (uint32_t c = n.firstLiteral; c != kNil; c = nodes_[c].nextSibling) {
                w.consider(nodes_[c].subtreeMin);
            }
        } else {
            w.consider(n.subtreeMin);
        }
        return;
    }
    const bool dollar = root && startsWithDollar(level);
    if (!dollar) {
        w.consider(n.hashRule);
        if (n.plus != kNil) overlap(n.plus, w, pos, more, false);
    }
    if (level == "+") {
        // Cost: one step per literal child here. Deny lists, the only overlap users, are small.
        for (uint32_t c = n.firstLiteral; c != kNil; c = nodes_[c].nextSibling) {
            if (root && startsWithDollar(label(nodes_[c]))) continue;
            overlap(c, w, pos, more, false);
        }
        return;
    }
    if (const uint32_t child = findLiteral(node, level); child != kNil) {
        overlap(child, w, pos, more, false);
    }
}

TopicTrie::RuleId TopicTrie::firstMatch(std::string_view topic, RuleId bound) const {
    Walk w{topic, bound};
    match(0, w, 0, !topic.empty(), true);
    return w.best == bound ? kNoRule : w.best;
}

TopicTrie::RuleId TopicTrie::firstCover(std::string_view filter, RuleId bound) const {
    Walk w{filter, bound};
    cover(0, w, 0, !filter.empty(), true);
    return w.best == bound ? kNoRule : w.best;
}

TopicTrie::RuleId TopicTrie::firstOverlap(std::string_view filter, RuleId bound) const {
    Walk w{filter, bound};
    overlap(0, w, 0, !filter.empty(), true);
    return w.best == bound ? kNoRule : w.best;
}

}  // namespace moat::policy
