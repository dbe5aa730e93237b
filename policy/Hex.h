#pragma once
// Lower-case hexadecimal, as digests and fingerprints are written in keys and logs.

#include <cstddef>
#include <string>

namespace moat::policy {

inline std::string hexEncode(const unsigned char* data, size_t size) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (size_t i = 0; i < size; ++i) {
        out.push_back(kHex[data[i] >> 4]);
        out.push_back(kHex[data[i] & 15]);
    }
    return out;
}

}  // namespace moat::policy
