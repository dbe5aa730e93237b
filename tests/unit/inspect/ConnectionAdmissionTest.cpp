#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/inspect/limits/ConnectionAdmission.h"
#include "gateway/inspect/limits/ShardedAdmission.h"

using namespace std::chrono_literals;
using moat::config::LimitsConfig;
using moat::config::Rate;
using moat::inspect::Admission;
using moat::inspect::BanLookup;
using moat::inspect::ConnectionAdmission;
using moat::inspect::ShardedAdmission;
using moat::inspect::SharedCounter;
using moat::inspect::SteadyTime;

namespace {

const SteadyTime t0 = SteadyTime{} + 1000h;

class FakeBans : public BanLookup {
  public:
    std::set<std::string, std::less<>> ips;
    bool isIpBanned(std::string_view ip, SteadyTime) const override {
        return ips.find(ip) != ips.end();
    }
    bool isIdentityBanned(std::string_view, SteadyTime) const override { return false; }
};

LimitsConfig limits(uint32_t total, uint32_t perIp, double ratePerSecond) {
    LimitsConfig l;
    l.maxConnections = total;
    l.maxConnectionsPerIp = perIp;
    l.connectionRatePerIp = Rate{ratePerSecond};
    return l;
}

std::string ipNumber(int i) {
    return "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
           std::to_string(i & 255);
}

}  // namespace

TEST_CASE("max_connections limits the total", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(2, 0, 0));
    CHECK(a.admit("10.0.0.1", t0, bans) == Admission::Accepted);
    CHECK(a.admit("10.0.0.2", t0, bans) == Admission::Accepted);
    CHECK(a.admit("10.0.0.3", t0, bans) == Admission::LimitedTotal);
    CHECK(a.active() == 2);
    a.release("10.0.0.1");
    CHECK(a.active() == 1);
    CHECK(a.admit("10.0.0.3", t0, bans) == Admission::Accepted);
}

TEST_CASE("max_connections_per_ip limits one address, not the others", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(100, 2, 0));
    CHECK(a.admit("192.0.2.7", t0, bans) == Admission::Accepted);
    CHECK(a.admit("192.0.2.7", t0, bans) == Admission::Accepted);
    CHECK(a.admit("192.0.2.7", t0, bans) == Admission::LimitedPerIp);
    CHECK(a.admit("192.0.2.8", t0, bans) == Admission::Accepted);
    a.release("192.0.2.7");
    CHECK(a.admit("192.0.2.7", t0, bans) == Admission::Accepted);
    CHECK(a.active() == 3);
}

TEST_CASE("connection_rate_per_ip is a token bucket per address", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(100, 0, 2));  // 2/s, burst 2
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::Accepted);
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::Accepted);
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::LimitedRate);
    CHECK(a.admit("192.0.2.2", t0, bans) == Admission::Accepted);
    CHECK(a.admit("192.0.2.1", t0 + 499ms, bans) == Admission::LimitedRate);
    CHECK(a.admit("192.0.2.1", t0 + 500ms, bans) == Admission::Accepted);
}

TEST_CASE("rejected attempts also cost rate tokens", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(100, 1, 3));
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::Accepted);
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::LimitedPerIp);
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::LimitedPerIp);
    a.release("192.0.2.1");
    CHECK(a.admit("192.0.2.1", t0, bans) == Admission::LimitedRate);
}

TEST_CASE("banned addresses are refused first", "[admission]") {
    FakeBans bans;
    bans.ips.insert("203.0.113.9");
    ConnectionAdmission a(limits(100, 10, 10));
    CHECK(a.admit("203.0.113.9", t0, bans) == Admission::Banned);
    CHECK(a.admit("203.0.113.10", t0, bans) == Admission::Accepted);
    CHECK(a.active() == 1);
}

TEST_CASE("a real BanTable can be the ban lookup", "[admission]") {
    moat::config::BansConfig bc;
    bc.authFailures = 1;
    moat::inspect::BanTable table(bc);
    table.recordAuthFailure("203.0.113.9", "", t0);
    ConnectionAdmission a(limits(100, 10, 10));
    CHECK(a.admit("203.0.113.9", t0, table) == Admission::Banned);
}

TEST_CASE("release of an unknown address or a double release is harmless", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(1, 1, 0));
    a.release("10.9.9.9");
    REQUIRE(a.admit("10.0.0.1", t0, bans) == Admission::Accepted);
    a.release("10.0.0.1");
    a.release("10.0.0.1");
    CHECK(a.active() == 0);
    CHECK(a.admit("10.0.0.1", t0, bans) == Admission::Accepted);
    CHECK(a.admit("10.0.0.2", t0, bans) == Admission::LimitedTotal);
}

TEST_CASE("sweep drops idle addresses once their bucket has refilled", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(100, 10, 1));
    REQUIRE(a.admit("10.0.0.1", t0, bans) == Admission::Accepted);
    REQUIRE(a.admit("10.0.0.2", t0, bans) == Admission::Accepted);
    a.release("10.0.0.2");
    CHECK(a.trackedIps() == 2);
    a.sweep(t0 + 100ms);  // 10.0.0.2 still owes rate history
    CHECK(a.trackedIps() == 2);
    a.sweep(t0 + 5s);  // refilled: dropped. 10.0.0.1 has a live connection: kept
    CHECK(a.trackedIps() == 1);
    // Its rate history was full anyway, so dropping it lost nothing.
    CHECK(a.admit("10.0.0.2", t0 + 5s, bans) == Admission::Accepted);
}

TEST_CASE("without a rate limit an idle address is forgotten on release", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(100, 10, 0));
    REQUIRE(a.admit("10.0.0.1", t0, bans) == Admission::Accepted);
    a.release("10.0.0.1");
    CHECK(a.trackedIps() == 0);
}

TEST_CASE("tracked addresses are capped, live ones are kept", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(0, 2, 5), nullptr, 64);
    // Ten addresses hold connections for the whole test.
    for (int i = 0; i < 10; ++i) REQUIRE(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
    // A spray of one-shot connections from many addresses.
    for (int i = 10; i < 10000; ++i) {
        REQUIRE(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
        a.release(ipNumber(i));
        CHECK(a.trackedIps() <= 64);
    }
    // The ten live entries survived every eviction: their per-IP counts still hold.
    for (int i = 0; i < 10; ++i) {
        CHECK(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
        CHECK(a.admit(ipNumber(i), t0, bans) == Admission::LimitedPerIp);
    }
}

TEST_CASE("a shared counter enforces max_connections across workers", "[admission]") {
    FakeBans bans;
    SharedCounter total;
    {
        ConnectionAdmission w1(limits(3, 0, 0), &total);
        ConnectionAdmission w2(limits(3, 0, 0), &total);
        CHECK(w1.admit("10.0.0.1", t0, bans) == Admission::Accepted);
        CHECK(w2.admit("10.0.0.2", t0, bans) == Admission::Accepted);
        CHECK(w2.admit("10.0.0.3", t0, bans) == Admission::Accepted);
        CHECK(w1.admit("10.0.0.4", t0, bans) == Admission::LimitedTotal);
        CHECK(total.value() == 3);
        w2.release("10.0.0.2");
        CHECK(total.value() == 2);
        CHECK(w1.admit("10.0.0.4", t0, bans) == Admission::Accepted);
        CHECK(w1.active() == 2);
        CHECK(w2.active() == 1);
    }
    // Destroyed workers give their slots back.
    CHECK(total.value() == 0);
}

TEST_CASE("shared counter: zero means unlimited", "[admission]") {
    SharedCounter c;
    for (int i = 0; i < 100; ++i) CHECK(c.tryAcquire(0));
    CHECK(c.value() == 100);
    CHECK_FALSE(c.tryAcquire(100));
}

TEST_CASE("updateLimits applies to the next admission", "[admission]") {
    FakeBans bans;
    ConnectionAdmission a(limits(100, 5, 0));
    for (int i = 0; i < 3; ++i) REQUIRE(a.admit("10.0.0.1", t0, bans) == Admission::Accepted);
    a.updateLimits(limits(100, 2, 0));
    CHECK(a.admit("10.0.0.1", t0, bans) == Admission::LimitedPerIp);
    CHECK(a.active() == 3);  // live connections above the new limit stay
    a.updateLimits(limits(100, 2, 1));
    CHECK(a.admit("10.0.0.2", t0, bans) == Admission::Accepted);
    CHECK(a.admit("10.0.0.2", t0, bans) == Admission::LimitedRate);
}

TEST_CASE("admission names are the metric labels", "[admission]") {
    using moat::inspect::admissionName;
    CHECK(std::string(admissionName(Admission::LimitedTotal)) == "max_connections");
    CHECK(std::string(admissionName(Admission::LimitedRate)) == "connection_rate");
    CHECK(std::string(admissionName(Admission::LimitedPerIp)) == "max_connections_per_ip");
}

TEST_CASE("ipLimitKey groups IPv6 by /64 and unmaps IPv4", "[admission]") {
    using moat::inspect::ipLimitKey;
    CHECK(ipLimitKey("192.0.2.1") == "192.0.2.1");
    CHECK(ipLimitKey("::ffff:192.0.2.1") == "192.0.2.1");
    CHECK(ipLimitKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
    CHECK(ipLimitKey("2001:db8:1:2::1") == ipLimitKey("2001:db8:1:2:ffff::9"));
    CHECK(ipLimitKey("::1") == "::/64");
    CHECK(ipLimitKey("") == "");
    CHECK(ipLimitKey("not-an-ip") == "not-an-ip");
    CHECK(ipLimitKey(std::string(200, 'a')) == std::string(200, 'a'));
    CHECK(ipLimitKey(std::string_view("1.2.3.4\0x", 9)) == std::string("1.2.3.4\0x", 9));
}

// ---------------------------------------------------------------- ShardedAdmission

TEST_CASE("sharded admission keeps every limit per process", "[admission]") {
    FakeBans bans;
    ShardedAdmission a(limits(100, 2, 0));
    // Per address: exact, whatever shard the address lands in.
    for (int i = 0; i < 40; ++i) {
        CHECK(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
        CHECK(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
        CHECK(a.admit(ipNumber(i), t0, bans) == Admission::LimitedPerIp);
    }
    CHECK(a.active() == 80);
    // The total spans the shards: 20 more, whichever shards they fall in.
    int accepted = 0;
    for (int i = 40; i < 80; ++i)
        if (a.admit(ipNumber(i), t0, bans) == Admission::Accepted) ++accepted;
    CHECK(accepted == 20);
    CHECK(a.admit(ipNumber(1000), t0, bans) == Admission::LimitedTotal);
    a.release(ipNumber(0));
    CHECK(a.admit(ipNumber(1000), t0, bans) == Admission::Accepted);
    bans.ips.insert(ipNumber(2000));
    CHECK(a.admit(ipNumber(2000), t0, bans) == Admission::Banned);
}

TEST_CASE("sharded admission: new limits reach every shard", "[admission]") {
    FakeBans bans;
    ShardedAdmission a(limits(0, 1, 0));
    for (int i = 0; i < 64; ++i) CHECK(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
    a.updateLimits(limits(0, 2, 0));
    for (int i = 0; i < 64; ++i) CHECK(a.admit(ipNumber(i), t0, bans) == Admission::Accepted);
    for (int i = 0; i < 64; ++i) CHECK(a.admit(ipNumber(i), t0, bans) == Admission::LimitedPerIp);
}

TEST_CASE("sharded admission: one address from many threads stays within its limit",
          "[admission]") {
    // SO_REUSEPORT spreads one address over every worker: the per-IP cap must hold exactly.
    FakeBans bans;
    SharedCounter total;
    ShardedAdmission a(limits(0, 5, 0), &total);
    std::atomic<int> accepted{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w) {
        workers.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                if (a.admit("203.0.113.9", t0, bans) == Admission::Accepted) ++accepted;
                (void)a.admit(ipNumber(i), t0, bans);  // other addresses, other shards
            }
        });
    }
    for (auto& t : workers) t.join();
    CHECK(accepted == 5);
    CHECK(total.value() == a.active());
}
