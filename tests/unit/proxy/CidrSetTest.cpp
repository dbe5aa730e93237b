// trusted_proxies matching.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "gateway/proxy/CidrSet.h"

using namespace moat::proxy;

namespace {
Address addr(const char* ip) {
    Address a;
    if (inet_pton(AF_INET, ip, a.ip.data()) == 1) {
        a.family = AF_INET;
    } else {
        REQUIRE(inet_pton(AF_INET6, ip, a.ip.data()) == 1);
        a.family = AF_INET6;
    }
    return a;
}
CidrSet set(std::vector<std::string> cidrs) {
    std::string err;
    auto s = CidrSet::parse(cidrs, err);
    INFO(err);
    REQUIRE(s);
    return *s;
}
}  // namespace

TEST_CASE("IPv4 networks", "[cidr]") {
    CidrSet s = set({"10.0.0.0/8", "192.168.1.128/25", "203.0.113.5"});
    CHECK(s.contains(addr("10.0.0.1")));
    CHECK(s.contains(addr("10.255.255.255")));
    CHECK_FALSE(s.contains(addr("11.0.0.0")));
    CHECK(s.contains(addr("192.168.1.128")));
    CHECK(s.contains(addr("192.168.1.255")));
    CHECK_FALSE(s.contains(addr("192.168.1.127")));
    CHECK(s.contains(addr("203.0.113.5")));
    CHECK_FALSE(s.contains(addr("203.0.113.4")));
    CHECK_FALSE(s.contains(addr("::ffff:10.0.0.1")));  // not normalised here: AF_INET6
    CHECK_FALSE(s.contains(Address{}));
}

TEST_CASE("IPv6 networks, and IPv4 networks written IPv4-mapped", "[cidr]") {
    CidrSet s = set({"fd00::/8", "2001:db8:1::/48", "::ffff:172.16.0.0/108"});
    CHECK(s.contains(addr("fd12::1")));
    CHECK_FALSE(s.contains(addr("fe80::1")));
    CHECK(s.contains(addr("2001:db8:1:ffff::1")));
    CHECK_FALSE(s.contains(addr("2001:db8:2::1")));
    CHECK(s.contains(addr("172.16.5.5")));
    CHECK(s.contains(addr("172.31.255.255")));
    CHECK_FALSE(s.contains(addr("172.32.0.0")));
}

TEST_CASE("prefix 0 matches the whole family only", "[cidr]") {
    CidrSet s = set({"0.0.0.0/0"});
    CHECK(s.contains(addr("1.2.3.4")));
    CHECK_FALSE(s.contains(addr("::1")));
    CHECK(set({"::/0"}).contains(addr("::1")));
    CHECK(set({}).empty());
}

TEST_CASE("bad networks are refused", "[cidr]") {
    for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "x", "10.0.0.0/a",
                            "10.0.0.0/-1", "10.0.0.0/0008"}) {
        std::string err;
        INFO(bad);
        CHECK_FALSE(CidrSet::parse({bad}, err));
        CHECK_FALSE(err.empty());
    }
}
