#pragma once
// Rule filters as written in the policy, with the placeholders %u (identity) and %c (client
// id), and their per-connection expansion.

#include <string>
#include <string_view>

namespace moat::policy {

// True when the filter contains a placeholder (any `%`).
bool hasPlaceholder(std::string_view ruleFilter);

// Empty when `ruleFilter` is acceptable in a policy, else why not: an MQTT-valid filter once
// placeholders are filled, only %u / %c, at most TopicTrie::kMaxLevels levels, not `$share/`.
std::string validateRuleFilter(std::string_view ruleFilter);

// A placeholder value that must never be spliced into a filter: it would add levels (`/`),
// wildcards (`+`, `#`), an empty level that reads as a different topic, or a NUL.
bool isUnsafePlaceholderValue(std::string_view value);

// Expands the placeholders of a validated rule filter into `out`.
//
// Allow rules (deny == false): if a value is unsafe, or would turn the first level into a `$`
// level (`%u/#` with identity `$SYS` must not grant `$SYS/#`), the rule is dropped: returns
// false and the rule never matches (the CVE-2017-7650 class of bugs).
//
// Deny rules (deny == true): dropping would silently widen access, so instead every level
// holding an unsafe value becomes `+`: the rule still denies, more broadly. Always returns
// true. (A `+` first level does not reach `$` topics; that only matters for identities that
// are both unsafe and `$`-prefixed, which deny nothing else an allow rule could grant.)
bool expandRuleFilter(std::string_view ruleFilter, std::string_view identity,
                      std::string_view clientId, bool deny, std::string& out);

}  // namespace moat::policy
