// PacketLimiter on a fake clock: publish_rate, publish_bytes_rate, control_packet_rate;
// throttle (hold) versus disconnect; reload.
#include <catch2/catch.hpp>

#include "gateway/inspect/limits/PacketLimiter.h"

using namespace moat;
using namespace moat::inspect;
using mqtt::PacketType;
using K = LimitDecision::Kind;

namespace {
SteadyTime at(int64_t ms) {
    return SteadyTime(std::chrono::milliseconds(ms));
}
}  // namespace

TEST_CASE("limiter: other packets are never limited") {
    PacketLimiter l({1, 1, 1, false});
    for (int i = 0; i < 10; ++i) CHECK(l.admit(PacketType::Puback, 4, at(0)).kind == K::Admit);
}

TEST_CASE("limiter: unlimited publishes are admitted and counted for the spike baseline") {
    PacketLimiter l({0, 0, 0, false});
    auto d = l.admit(PacketType::Publish, 100, at(0));
    CHECK(d.kind == K::Admit);
    CHECK(d.publishAdmitted);
}

TEST_CASE("limiter: publish_rate holds until a token is back") {
    PacketLimiter l({2, 0, 0, false});
    CHECK(l.admit(PacketType::Publish, 10, at(0)).kind == K::Admit);
    CHECK(l.admit(PacketType::Publish, 10, at(0)).kind == K::Admit);
    auto d = l.admit(PacketType::Publish, 10, at(0));
    CHECK(d.kind == K::Hold);
    CHECK(std::string(d.limit) == "publish_rate");
    CHECK(d.holdMs >= 500);
    CHECK(d.holdMs <= 501);  // rounded up: a timer never fires early
    CHECK_FALSE(d.publishAdmitted);
    CHECK(l.admit(PacketType::Publish, 10, at(501)).kind == K::Admit);
}

TEST_CASE("limiter: publish_bytes_rate gives the message token back") {
    PacketLimiter l({1000, 100, 0, false});
    CHECK(l.admit(PacketType::Publish, 100, at(0)).kind == K::Admit);
    auto d = l.admit(PacketType::Publish, 50, at(0));
    CHECK(d.kind == K::Hold);
    CHECK(std::string(d.limit) == "publish_bytes_rate");
    CHECK(d.holdMs >= 500);
    CHECK(d.holdMs <= 501);  // rounded up: a timer never fires early
}

TEST_CASE("limiter: on_exceed disconnect closes with the v5 reason") {
    PacketLimiter l({1, 10, 1, true});
    CHECK(l.admit(PacketType::Publish, 5, at(0)).kind == K::Admit);
    auto d = l.admit(PacketType::Publish, 5, at(0));
    CHECK(d.kind == K::Close);
    CHECK(d.v5Reason == mqtt::reason::MessageRateTooHigh);
    PacketLimiter bytes({100, 10, 1, true});
    CHECK(bytes.admit(PacketType::Publish, 10, at(0)).kind == K::Admit);
    auto b = bytes.admit(PacketType::Publish, 10, at(0));
    CHECK(b.kind == K::Close);
    CHECK(b.v5Reason == mqtt::reason::QuotaExceeded);
}

TEST_CASE("limiter: control_packet_rate covers PINGREQ, SUBSCRIBE and UNSUBSCRIBE") {
    PacketLimiter l({0, 0, 2, false});
    CHECK(l.admit(PacketType::Pingreq, 2, at(0)).kind == K::Admit);
    CHECK(l.admit(PacketType::Subscribe, 20, at(0)).kind == K::Admit);
    auto d = l.admit(PacketType::Unsubscribe, 20, at(0));
    CHECK(d.kind == K::Hold);
    CHECK(std::string(d.limit) == "control_packet_rate");
    CHECK(l.admit(PacketType::Publish, 20, at(0)).kind == K::Admit);
}

TEST_CASE("limiter: a reload changes the rate and on_exceed") {
    PacketLimiter l({1, 0, 0, false});
    CHECK(l.admit(PacketType::Publish, 1, at(0)).kind == K::Admit);
    CHECK(l.admit(PacketType::Publish, 1, at(0)).kind == K::Hold);
    l.reconfigure({1, 0, 0, true});
    CHECK(l.admit(PacketType::Publish, 1, at(0)).kind == K::Close);
    l.reconfigure({0, 0, 0, true});
    CHECK(l.admit(PacketType::Publish, 1, at(0)).kind == K::Admit);
}

TEST_CASE("limiter: a PUBLISH larger than the byte burst passes from a full bucket") {
    // A packet bigger than one second of publish_bytes_rate can never fit the bucket: it is
    // admitted whenever the bucket is full (leaving it in debt), so it is never held forever.
    PacketLimiter l({1000, 100, 0, false});
    CHECK(l.admit(PacketType::Publish, 500, at(0)).kind == K::Admit);
    auto d = l.admit(PacketType::Publish, 500, at(0));
    REQUIRE(d.kind == K::Hold);
    // In debt by 400: the bucket is full again after 5 s, and the hold says so.
    CHECK(d.holdMs >= 5000);
    CHECK(d.holdMs <= 5001);
    CHECK(l.admit(PacketType::Publish, 500, at(static_cast<int64_t>(d.holdMs))).kind == K::Admit);
}
