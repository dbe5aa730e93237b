#include "policy/RuleFilter.h"

#include "policy/TopicLevels.h"
#include "policy/TopicMatch.h"
#include "policy/TopicTrie.h"

namespace moat::policy {

namespace {

constexpr size_t kMaxTopicBytes = 65535;

// Appends `level` with placeholders filled in; returns false when a value is unsafe there
// (for an allow rule, that includes a value making the first level a `$` level).
bool appendLevel(std::string_view level, bool firstLevel, bool deny, std::string_view identity,
                 std::string_view clientId, std::string& out) {
    const size_t start = out.size();
    bool safe = true;
    for (size_t i = 0; i < level.size(); ++i) {
        if (level[i] == '%' && i + 1 < level.size()) {
            const std::string_view value = level[i + 1] == 'u' ? identity : clientId;
            if (isUnsafePlaceholderValue(value)) safe = false;
            out.append(value);
            ++i;
        } else {
            out.push_back(level[i]);
        }
    }
    // A deny rule keeps the literal `$` level: that is exactly what it denies.
    if (!deny && firstLevel && !startsWithDollar(level) &&
        startsWithDollar(std::string_view(out).substr(start))) {
        safe = false;
    }
    return safe;
}

}  // namespace

bool hasPlaceholder(std::string_view ruleFilter) {
    return ruleFilter.find('%') != std::string_view::npos;
}

bool isUnsafePlaceholderValue(std::string_view value) {
    return value.empty() || value.find_first_of(std::string_view("+#/\0", 4)) != value.npos;
}

std::string validateRuleFilter(std::string_view ruleFilter) {
    if (ruleFilter.empty()) return "empty topic filter";
    std::string probe;
    probe.reserve(ruleFilter.size());
    for (size_t i = 0; i < ruleFilter.size(); ++i) {
        if (ruleFilter[i] != '%') {
            probe.push_back(ruleFilter[i]);
            continue;
        }
        if (i + 1 >= ruleFilter.size()) return "'%' at the end (placeholders are %u and %c)";
        const char p = ruleFilter[i + 1];
        if (p != 'u' && p != 'c') {
            return std::string("unknown placeholder '%") + p + "' (placeholders are %u and %c)";
        }
        probe.push_back('x');
        ++i;
    }
    if (isSharedFilter(probe)) return "'$share/' filter in a rule (write the filter it shares)";
    if (probe.size() > kMaxTopicBytes) return "topic filter longer than 65535 bytes";
    if (probe.find('\0') != std::string::npos) return "NUL character in topic filter";
    if (!isValidTopicFilter(probe)) {
        return "invalid topic filter ('+' and '#' must be whole levels, '#' the last one)";
    }
    size_t levels = 1;
    for (char c : probe) levels += c == '/';
    if (levels > TopicTrie::kMaxLevels) {
        return "topic filter deeper than " + std::to_string(TopicTrie::kMaxLevels) + " levels";
    }
    return {};
}

bool expandRuleFilter(std::string_view ruleFilter, std::string_view identity,
                      std::string_view clientId, bool deny, std::string& out) {
    out.clear();
    TopicLevels levels(ruleFilter);
    bool first = true;
    while (levels.more()) {
        const std::string_view level = levels.take();
        if (!first) out.push_back('/');
        if (level.find('%') == std::string_view::npos) {
            out.append(level);
        } else {
            const size_t start = out.size();
            if (!appendLevel(level, first, deny, identity, clientId, out)) {
                if (!deny) return false;
                out.resize(start);
                out.push_back('+');
            }
        }
        first = false;
    }
    if (out.size() <= kMaxTopicBytes) return true;
    // Safe values, but the result is too long to be a filter.
    if (!deny) return false;
    out.clear();
    TopicLevels again(ruleFilter);
    first = true;
    while (again.more()) {
        const std::string_view level = again.take();
        if (!first) out.push_back('/');
        if (level.find('%') == std::string_view::npos) {
            out.append(level);
        } else {
            out.push_back('+');
        }
        first = false;
    }
    return true;
}

}  // namespace moat::policy
