#include "gateway/inspect/limits/KeyedHash.h"

#include <cstring>
#include <random>

namespace moat::inspect {

namespace {

constexpr uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

struct SipState {
    uint64_t v0, v1, v2, v3;
    void round() {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
    void absorb(uint64_t m) {
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
};

uint64_t loadLe64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

struct ProcessKey {
    uint64_t k0, k1;
    ProcessKey() {
        std::random_device rd;  // getrandom(2) on Linux
        k0 = (uint64_t{rd()} << 32) ^ rd();
        k1 = (uint64_t{rd()} << 32) ^ rd();
    }
};

const ProcessKey& processKey() {
    static const ProcessKey key;  // thread-safe initialisation, once per process
    return key;
}

}  // namespace

uint64_t sipHash24(uint64_t k0, uint64_t k1, const void* data, size_t len) {
    SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
               k1 ^ 0x7465646279746573ULL};
    const auto* p = static_cast<const unsigned char*>(data);
    const size_t whole = len & ~size_t{7};
    for (size_t i = 0; i < whole; i += 8) s.absorb(loadLe64(p + i));
    uint64_t last = uint64_t{len & 0xff} << 56;
    for (size_t i = 0; i < (len & 7); ++i) last |= uint64_t{p[whole + i]} << (8 * i);
    s.absorb(last);
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) s.round();
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

size_t KeyedHash::operator()(std::string_view s) const {
    const ProcessKey& key = processKey();
    return static_cast<size_t>(sipHash24(key.k0, key.k1, s.data(), s.size()));
}

}  // namespace moat::inspect
