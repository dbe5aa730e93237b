#include <catch2/catch.hpp>

#include "gateway/inspect/KeepAlivePolicy.h"

using moat::inspect::decideKeepAlive;
using moat::mqtt::ProtocolVersion;

TEST_CASE("v3 keepalive 0 or above max_keepalive: forwarded unchanged with TCP probes") {
    for (ProtocolVersion v : {ProtocolVersion::V31, ProtocolVersion::V311}) {
        for (uint16_t ka : {uint16_t(0), uint16_t(1200), uint16_t(65535)}) {
            auto d = decideKeepAlive(v, ka, 300, false);
            CHECK_FALSE(d.refuse);
            CHECK(d.effective == ka);
            CHECK(d.tcpProbes);
            // v3_keepalive: refuse keeps Mosquitto's refusal.
            CHECK(decideKeepAlive(v, ka, 300, true).refuse);
        }
        auto in = decideKeepAlive(v, 60, 300, true);
        CHECK_FALSE(in.refuse);
        CHECK(in.effective == 60);
        CHECK_FALSE(in.tcpProbes);
        CHECK(decideKeepAlive(v, 300, 300, true).effective == 300);
    }
}

TEST_CASE("v5 keepalive 0 or above max_keepalive is clamped (Server Keep Alive)") {
    for (uint16_t ka : {uint16_t(0), uint16_t(1200)}) {
        auto d = decideKeepAlive(ProtocolVersion::V5, ka, 300, true);
        CHECK_FALSE(d.refuse);
        CHECK(d.effective == 300);
        CHECK_FALSE(d.tcpProbes);
    }
    CHECK(decideKeepAlive(ProtocolVersion::V5, 30, 300, false).effective == 30);
}

TEST_CASE("max_keepalive 0 sets no limit") {
    auto d = decideKeepAlive(ProtocolVersion::V311, 0, 0, true);
    CHECK_FALSE(d.refuse);
    CHECK(d.effective == 0);
    CHECK_FALSE(d.tcpProbes);
}
