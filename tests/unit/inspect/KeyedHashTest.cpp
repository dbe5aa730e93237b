#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "gateway/inspect/limits/KeyedHash.h"

using moat::inspect::KeyedHash;
using moat::inspect::sipHash24;

// Reference vectors from the SipHash paper (key 00..0f, message 00..len-1).
TEST_CASE("sipHash24 matches the reference vectors", "[keyed_hash]") {
    const uint64_t k0 = 0x0706050403020100ULL;
    const uint64_t k1 = 0x0f0e0d0c0b0a0908ULL;
    unsigned char msg[64];
    for (int i = 0; i < 64; ++i) msg[i] = static_cast<unsigned char>(i);
    CHECK(sipHash24(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ULL);
    CHECK(sipHash24(k0, k1, msg, 1) == 0x74f839c593dc67fdULL);
    CHECK(sipHash24(k0, k1, msg, 8) == 0x93f5f5799a932462ULL);
    CHECK(sipHash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
}

TEST_CASE("KeyedHash is consistent across key types", "[keyed_hash]") {
    KeyedHash h;
    const std::string s = "203.0.113.7";
    CHECK(h(s) == h(std::string_view(s)));
    CHECK(h(s) == h(s.c_str()));
    CHECK(h(std::string_view("a")) != h(std::string_view("b")));
}
