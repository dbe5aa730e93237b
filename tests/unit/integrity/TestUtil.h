#pragma once
// Helpers shared by the integrity tests.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::integrity::test {

inline std::vector<uint8_t> hex(std::string_view h) {
    std::vector<uint8_t> out;
    auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(uint8_t(nib(h[i]) << 4 | nib(h[i + 1])));
    return out;
}

inline std::string str(const std::vector<uint8_t>& v) {
    return std::string(v.begin(), v.end());
}

}  // namespace moat::integrity::test
