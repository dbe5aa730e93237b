// Fuzzes topic matching against the naive reference (tests/unit/policy/ReferenceMatch.h).
// Input: "A\nB\nT" — filters A and B, topic T (missing parts are empty). Checks
//   topicMatches == reference; filterCovers / filtersOverlap exactly (brute force) for small
//   inputs and for soundness on topics instantiated from B otherwise; the TopicTrie agrees
//   with the pairwise functions; placeholder expansion only ever yields valid filters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/RuleFilter.h"
#include "policy/TopicMatch.h"
#include "policy/TopicTrie.h"
#include "tests/unit/policy/ReferenceMatch.h"

using namespace moat::policy;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

std::string join(const std::vector<std::string>& levels) {
    std::string out;
    for (size_t i = 0; i < levels.size(); ++i) {
        if (i) out += '/';
        out += levels[i];
    }
    return out;
}

void enumerate(const std::vector<std::string>& alphabet, std::vector<std::string>& prefix,
               size_t maxDepth, std::vector<std::string>& out) {
    for (const std::string& level : alphabet) {
        prefix.push_back(level);
        out.push_back(join(prefix));
        if (prefix.size() < maxDepth) enumerate(alphabet, prefix, maxDepth, out);
        prefix.pop_back();
    }
}

// Topics B can match, built by filling its wildcards with levels of A, a fresh level, or
// (for `#`) nothing / two levels.
std::vector<std::string> instances(const std::vector<std::string>& b,
                                   const std::vector<std::string>& fill) {
    std::vector<std::vector<std::string>> partial(1);
    for (const std::string& level : b) {
        std::vector<std::vector<std::string>> next;
        for (const auto& p : partial) {
            if (level == "#") {
                next.push_back(p);
                for (const std::string& f : fill) {
                    auto q = p;
                    q.push_back(f);
                    next.push_back(q);
                    q.push_back("deep");
                    next.push_back(q);
                }
            } else if (level == "+") {
                for (const std::string& f : fill) {
                    auto q = p;
                    q.push_back(f);
                    next.push_back(q);
                }
            } else {
                auto q = p;
                q.push_back(level);
                next.push_back(q);
            }
            if (next.size() > 2000) break;
        }
        partial.swap(next);
    }
    std::vector<std::string> out;
    for (const auto& p : partial) {
        if (!p.empty()) out.push_back(join(p));
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t n1 = in.find('\n');
    const std::string_view a = in.substr(0, n1);
    std::string_view rest = n1 == std::string_view::npos ? std::string_view() : in.substr(n1 + 1);
    const size_t n2 = rest.find('\n');
    const std::string_view b = rest.substr(0, n2);
    const std::string_view t =
        n2 == std::string_view::npos ? std::string_view() : rest.substr(n2 + 1);

    check(topicMatches(a, b) == reference::matches(a, b));
    check(topicMatches(a, t) == reference::matches(a, t));
    check(topicMatches(b, t) == reference::matches(b, t));

    const bool covers = filterCovers(a, b);
    const bool overlap = filtersOverlap(a, b);
    check(overlap == filtersOverlap(b, a));
    const bool valid = reference::validFilter(a) && reference::validFilter(b);
    if (!valid) check(!covers && !overlap);
    if (covers) check(overlap);  // every valid filter matches some topic
    if (valid) check(filterCovers(a, a) && filterCovers(b, b));

    if (valid) {
        const auto la = reference::split(a);
        const auto lb = reference::split(b);
        std::set<std::string> literals = {"\x01"};  // a level neither filter names
        for (const auto* levels : {&la, &lb}) {
            for (const std::string& l : *levels) {
                if (l != "+" && l != "#") literals.insert(l);
            }
        }
        const size_t depth = std::max(la.size(), lb.size()) + 1;
        if (depth <= 4 && literals.size() <= 5) {
            // Exact: every topic over these levels, one level deeper than either filter.
            std::vector<std::string> alphabet(literals.begin(), literals.end()), prefix, topics;
            enumerate(alphabet, prefix, depth, topics);
            bool expectCovers = true, expectOverlap = false;
            for (const std::string& topic : topics) {
                if (!reference::validName(topic)) continue;
                const bool mb = reference::matches(b, topic);
                const bool ma = reference::matches(a, topic);
                if (mb && !ma) expectCovers = false;
                if (mb && ma) expectOverlap = true;
            }
            check(covers == expectCovers);
            check(overlap == expectOverlap);
        } else {
            // Sound: instances of B must all match A when A covers B; none may when disjoint.
            std::vector<std::string> fill(literals.begin(), literals.end());
            for (const std::string& topic : instances(lb, fill)) {
                if (!reference::validName(topic) || !reference::matches(b, topic)) continue;
                const bool ma = reference::matches(a, topic);
                if (covers) check(ma);
                if (!overlap) check(!ma);
            }
        }

        // One-filter trie == pairwise functions.
        size_t levels = 1;
        for (char c : a) levels += c == '/';
        if (levels <= TopicTrie::kMaxLevels) {
            TopicTrie trie;
            trie.insert(a, 7);
            check((trie.firstCover(b) == 7) == covers);
            check((trie.firstOverlap(b) == 7) == overlap);
            if (reference::validName(t)) check((trie.firstMatch(t) == 7) == topicMatches(a, t));
        }
    }

    // Shared-subscription stripping returns a suffix (or nothing).
    const std::string_view inner = shareInnerFilter(a);
    check(inner.empty() || a.ends_with(inner));

    // Placeholder expansion of a valid rule yields a valid filter, whatever the values.
    if (validateRuleFilter(a).empty()) {
        std::string out;
        for (bool deny : {false, true}) {
            if (expandRuleFilter(a, b, t, deny, out)) check(isValidTopicFilter(out));
            if (deny) check(expandRuleFilter(a, b, t, deny, out));
        }
    }
    return 0;
}
