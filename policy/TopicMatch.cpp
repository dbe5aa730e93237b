#include "policy/TopicMatch.h"

#include "policy/TopicLevels.h"

namespace moat::policy {

namespace {

constexpr size_t kMaxTopicBytes = 65535;  // MQTT UTF-8 string length limit

constexpr std::string_view kSharePrefix = "$share/";

}  // namespace

bool isValidTopicName(std::string_view topic) {
    if (topic.empty() || topic.size() > kMaxTopicBytes) return false;
    for (char c : topic) {
        if (c == '+' || c == '#' || c == '\0') return false;
    }
    return true;
}

bool isValidTopicFilter(std::string_view filter) {
    if (filter.empty() || filter.size() > kMaxTopicBytes) return false;
    TopicLevels levels(filter);
    while (levels.more()) {
        const std::string_view level = levels.take();
        if (level == "#") return !levels.more();
        if (level == "+") continue;
        for (char c : level) {
            if (c == '+' || c == '#' || c == '\0') return false;
        }
    }
    return true;
}

bool topicMatches(std::string_view filter, std::string_view topic) {
    if (!isValidTopicFilter(filter) || !isValidTopicName(topic)) return false;
    TopicLevels f(filter);
    TopicLevels t(topic);
    bool first = true;
    while (f.more()) {
        const std::string_view fl = f.take();
        if (fl == "#") {
            // `#` also matches the parent level ("a/#" matches "a"); at the first level the
            // topic necessarily has one, which must not be a `$` level.
            return !(first && startsWithDollar(topic));
        }
        if (!t.more()) return false;
        const std::string_view tl = t.take();
        if (fl == "+") {
            if (first && startsWithDollar(tl)) return false;
        } else if (fl != tl) {
            return false;
        }
        first = false;
    }
    return !t.more();
}

bool filterCovers(std::string_view outer, std::string_view inner) {
    if (!isValidTopicFilter(outer) || !isValidTopicFilter(inner)) return false;
    TopicLevels o(outer);
    TopicLevels i(inner);
    bool first = true;
    bool innerFirstEmpty = false;  // `inner` starts with an empty level ("/...")
    size_t depth = 0;              // levels consumed on both sides
    while (true) {
        if (!i.more()) {
            // `inner` matches exactly the topic spelled so far: `outer` must end here too, or
            // continue with `#` (which matches its parent level).
            return !o.more() || o.take() == "#";
        }
        const std::string_view il = i.take();
        if (!o.more()) return false;  // `inner` reaches deeper topics than `outer` can
        const std::string_view ol = o.take();
        const bool innerLiteral = !isWildcardLevel(il);
        if (ol == "#") return !(first && innerLiteral && startsWithDollar(il));
        if (il == "#") {
            // `inner` matches every continuation, including none (the parent) unless that
            // would be no topic at all: at the first level, or after a single empty level
            // ("/#" does not match the empty, invalid, topic ""). Without the parent only `#`
            // covers it, or `+/#` (at the first level neither side matches `$` topics).
            const bool matchesParent = !first && !(depth == 1 && innerFirstEmpty);
            if (matchesParent || ol != "+") return false;
            return o.more() && o.take() == "#";
        }
        if (il == "+") {
            if (ol != "+") return false;  // a literal cannot cover every value of `+`
        } else if (ol == "+") {
            if (first && startsWithDollar(il)) return false;
        } else if (ol != il) {
            return false;
        }
        if (first) innerFirstEmpty = il.empty();
        first = false;
        ++depth;
    }
}

bool filtersOverlap(std::string_view a, std::string_view b) {
    if (!isValidTopicFilter(a) || !isValidTopicFilter(b)) return false;
    TopicLevels x(a);
    TopicLevels y(b);
    bool first = true;
    // The common topic's first level is forced to be empty (a literal "" on either side):
    // then a topic of that one level is "", which is not a topic.
    bool emptyFirst = false;
    size_t depth = 0;
    while (true) {
        if (!x.more() && !y.more()) return true;
        // One side ended: the common topic is the one spelled so far, which the other side
        // matches only through a `#` (parent-level match). Both sides consumed >= 1 level.
        if (!x.more() || !y.more()) {
            if (depth == 1 && emptyFirst) return false;
            return (x.more() ? x.take() : y.take()) == "#";
        }
        const std::string_view xl = x.take();
        const std::string_view yl = y.take();
        if (xl == "#" || yl == "#") {
            const std::string_view other = xl == "#" ? yl : xl;
            return !(first && !isWildcardLevel(other) && startsWithDollar(other));
        }
        if (xl == "+" || yl == "+") {
            const std::string_view other = xl == "+" ? yl : xl;
            if (first && !isWildcardLevel(other) && startsWithDollar(other)) return false;
        } else if (xl != yl) {
            return false;
        }
        if (first) emptyFirst = xl.empty() || yl.empty();
        first = false;
        ++depth;
    }
}

bool isSharedFilter(std::string_view filter) {
    return filter.starts_with(kSharePrefix);
}

std::string_view shareInnerFilter(std::string_view filter) {
    if (!isSharedFilter(filter)) return filter;
    const std::string_view rest = filter.substr(kSharePrefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return {};
    const std::string_view group = rest.substr(0, slash);
    if (group.find_first_of("+#") != std::string_view::npos) return {};
    return rest.substr(slash + 1);  // may be empty: matches nothing
}

}  // namespace moat::policy
