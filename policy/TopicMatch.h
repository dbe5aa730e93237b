#pragma once
// MQTT topic-name / topic-filter matching (MQTT 3.1.1 and 5.0, section 4.7).
//
// Every function here is allocation-free and total: invalid input never matches (and never
// covers or overlaps anything), so callers on the data path need no separate validation to
// stay safe. The codec rejects invalid topics anyway; this is defence in depth.
//
// `$` rule (4.7.2): a topic whose first level starts with `$` ($SYS/...) is not matched by a
// filter whose first level is a wildcard (`#`, `+/...`). It is matched only by filters that
// spell the `$` level out literally.

#include <string_view>

namespace moat::policy {

// A topic name as it may appear in PUBLISH: non-empty, at most 65535 bytes, no `+`, `#`, NUL.
bool isValidTopicName(std::string_view topic);

// A topic filter as it may appear in SUBSCRIBE: non-empty, at most 65535 bytes, no NUL,
// `+` only as a whole level, `#` only as the whole last level.
bool isValidTopicFilter(std::string_view filter);

// True when `filter` matches the topic name `topic`.
bool topicMatches(std::string_view filter, std::string_view topic);

// True when every topic name matched by `inner` is also matched by `outer`.
// Examples: `devices/#` covers `devices/a/+` and `devices`; `+/#` covers `#`; `#` does not
// cover `$SYS/x`; `a/+/#` does not cover `a/#` (it misses the topic `a`).
bool filterCovers(std::string_view outer, std::string_view inner);

// True when at least one topic name is matched by both filters.
// Examples: `devices/#` overlaps `devices/secret/#`; `#` does not overlap `$SYS/#`.
bool filtersOverlap(std::string_view a, std::string_view b);

// The filter a shared subscription actually selects: `$share/g/f/#` -> `f/#`. Non-shared
// filters are returned unchanged. A malformed shared filter (no group, empty group, group
// with a wildcard, nothing after the group) yields an empty view, which matches nothing.
std::string_view shareInnerFilter(std::string_view filter);

// True for `$share/...` filters (well-formed or not).
bool isSharedFilter(std::string_view filter);

}  // namespace moat::policy
