#pragma once
// SipHash-2-4 keyed with a per-process random key, as the hasher for tables whose keys an
// attacker chooses (source IPs, in IPv6 the low 64 bits are free; usernames). libstdc++'s
// std::hash is an unkeyed MurmurHash variant with known seed-independent collisions, which
// would let a client turn every lookup into a walk of one long bucket chain.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moat::inspect {

// SipHash-2-4 of data under the 128-bit key (k0, k1).
uint64_t sipHash24(uint64_t k0, uint64_t k1, const void* data, size_t len);

// Transparent (heterogeneous) hasher: lookups by std::string_view allocate nothing.
struct KeyedHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
    size_t operator()(const std::string& s) const { return (*this)(std::string_view(s)); }
    size_t operator()(const char* s) const { return (*this)(std::string_view(s)); }
};

}  // namespace moat::inspect
