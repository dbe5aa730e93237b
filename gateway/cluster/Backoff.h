#pragma once
// Reconnect backoff arithmetic for the Redis client, kept pure so it can be tested.

#include <cstdint>

namespace moat::cluster {

// `ms` moved by `percent` (-100..100) of itself. Signed on purpose: the unsigned version,
// `ms + ms * percent / 100`, wrapped a negative percent into a delay of millions of years, so
// about half of all reconnects never happened.
inline uint64_t withJitter(uint64_t ms, int percent) {
    const int64_t base = static_cast<int64_t>(ms);
    return static_cast<uint64_t>(base + base * percent / 100);
}

}  // namespace moat::cluster
