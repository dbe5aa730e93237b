#pragma once
// Deliberately naive reference implementations of MQTT topic matching (spec 4.7), written
// independently of policy/TopicMatch.cpp: split into vectors, recurse, no cleverness. Used by
// the randomised unit tests and by tests/fuzz/fuzz_topic.cpp as the oracle.

#include <string>
#include <string_view>
#include <vector>

namespace moat::policy::reference {

inline std::vector<std::string> split(std::string_view s) {
    std::vector<std::string> out(1);
    for (char c : s) {
        if (c == '/') {
            out.emplace_back();
        } else {
            out.back().push_back(c);
        }
    }
    return out;
}

inline bool validName(std::string_view t) {
    if (t.empty() || t.size() > 65535) return false;
    for (char c : t) {
        if (c == '+' || c == '#' || c == '\0') return false;
    }
    return true;
}

inline bool validFilter(std::string_view f) {
    if (f.empty() || f.size() > 65535) return false;
    const auto levels = split(f);
    for (size_t i = 0; i < levels.size(); ++i) {
        const std::string& l = levels[i];
        if (l == "+") continue;
        if (l == "#") {
            if (i + 1 != levels.size()) return false;
            continue;
        }
        for (char c : l) {
            if (c == '+' || c == '#' || c == '\0') return false;
        }
    }
    return true;
}

inline bool matchFrom(const std::vector<std::string>& f, size_t i,
                      const std::vector<std::string>& t, size_t j) {
    if (i == f.size()) return j == t.size();
    if (f[i] == "#") return true;  // the rest, including nothing (the parent level)
    if (j == t.size()) return false;
    if (f[i] != "+" && f[i] != t[j]) return false;
    return matchFrom(f, i + 1, t, j + 1);
}

// Both already split and known valid.
inline bool matchesSplit(const std::vector<std::string>& f, const std::vector<std::string>& t) {
    if (t[0].starts_with('$') && (f[0] == "+" || f[0] == "#")) return false;
    return matchFrom(f, 0, t, 0);
}

inline bool matches(std::string_view filter, std::string_view topic) {
    if (!validFilter(filter) || !validName(topic)) return false;
    return matchesSplit(split(filter), split(topic));
}

}  // namespace moat::policy::reference
