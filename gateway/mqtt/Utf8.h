#pragma once
// MQTT string rules (spec 1.5.4, 4.7).

#include <string_view>

namespace moat::mqtt {

// Well-formed UTF-8 (no overlongs, no code points above U+10FFFF), no surrogates
// U+D800..U+DFFF and no U+0000. Control characters and non-characters are allowed: the spec
// only says SHOULD NOT for them, and brokers accept them.
bool validMqttUtf8(std::string_view s);

// True when s holds '+' or '#'. One pass over the bytes: string_view::find_first_of calls
// memchr over its set once per character, which showed in the data path's profile.
inline bool hasWildcard(std::string_view s) {
    for (const char c : s)
        if (c == '+' || c == '#') return true;
    return false;
}

// A PUBLISH / will topic: 1..65535 bytes, valid MQTT UTF-8, no '+' or '#'.
bool validTopicName(std::string_view s);

// A SUBSCRIBE / UNSUBSCRIBE filter: 1..65535 bytes, valid MQTT UTF-8, '+' only as a whole level,
// '#' only as the whole last level. `$share/{name}/{filter}`: name non-empty without '+', '#',
// '/', and filter itself valid.
bool validTopicFilter(std::string_view s);

// True for `$share/...` filters (whether or not they are valid).
bool isSharedSubscription(std::string_view filter);

}  // namespace moat::mqtt
