#include "gateway/mqtt/Utf8.h"

#include <cstdint>

namespace moat::mqtt {

bool validMqttUtf8(std::string_view s) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const uint8_t c = *p;
        if (c < 0x80) {
            if (c == 0) return false;
            ++p;
            continue;
        }
        // Unicode 15, table 3-7: well-formed byte sequences. The tight second-byte bounds
        // exclude overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return false;  // 0x80..0xC1 (continuation / overlong lead) and 0xF5..0xFF
        }
        if (size_t(end - p) <= need) return false;
        if (p[1] < lo || p[1] > hi) return false;
        for (size_t i = 2; i <= need; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
        }
        p += need + 1;
    }
    return true;
}

bool validTopicName(std::string_view s) {
    if (s.empty() || s.size() > 0xFFFF) return false;
    if (hasWildcard(s)) return false;
    return validMqttUtf8(s);
}

namespace {

bool validPlainFilter(std::string_view s) {
    if (s.empty()) return false;
    size_t levelStart = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i != s.size() && s[i] != '/') continue;
        const std::string_view level = s.substr(levelStart, i - levelStart);
        if (hasWildcard(level)) {
            if (level.size() != 1) return false;
            if (level[0] == '#' && i != s.size()) return false;
        }
        levelStart = i + 1;
    }
    return true;
}

constexpr std::string_view kSharePrefix = "$share/";

}  // namespace

bool isSharedSubscription(std::string_view filter) {
    return filter.substr(0, kSharePrefix.size()) == kSharePrefix;
}

bool validTopicFilter(std::string_view s) {
    if (s.empty() || s.size() > 0xFFFF || !validMqttUtf8(s)) return false;
    if (!isSharedSubscription(s)) return validPlainFilter(s);
    const std::string_view rest = s.substr(kSharePrefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return false;
    if (hasWildcard(rest.substr(0, slash))) return false;
    return validPlainFilter(rest.substr(slash + 1));
}

}  // namespace moat::mqtt
