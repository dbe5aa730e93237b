// Scalar formats: durations, sizes, rates, host:port, CIDRs, booleans.

#include <catch2/catch.hpp>

#include "gateway/config/Config.h"
#include "gateway/config/Scalars.h"

using namespace moat::config;
using std::chrono::milliseconds;

TEST_CASE("parseDuration accepts every documented unit") {
    CHECK(parseDuration("500ms") == milliseconds(500));
    CHECK(parseDuration("10s") == milliseconds(10'000));
    CHECK(parseDuration("5m") == milliseconds(300'000));
    CHECK(parseDuration("1h") == milliseconds(3'600'000));
    CHECK(parseDuration("1d") == milliseconds(86'400'000));
    CHECK(parseDuration("0") == milliseconds(0));
    CHECK(parseDuration("0s") == milliseconds(0));
    CHECK(parseDuration("1.5s") == milliseconds(1500));
    CHECK(parseDuration("0.25h") == milliseconds(900'000));
    CHECK(parseDuration("1h30m") == milliseconds(5'400'000));
    CHECK(parseDuration("3650d") == milliseconds(3650LL * 86'400'000));
}

TEST_CASE("parseDuration refuses bad values") {
    const std::vector<std::string> bad{"",
                                       "10",
                                       "s",
                                       "10x",
                                       "10 s",
                                       " 10s",
                                       "10s ",
                                       "-1s",
                                       "+1s",
                                       "1.s",
                                       ".5s",
                                       "1.0005s",
                                       "10S",
                                       "10sec",
                                       "1e3ms",
                                       "0x10s",
                                       "1hm",
                                       "ms",
                                       "3651d",
                                       "99999999999999999999s",
                                       "18446744073709551615d",
                                       "1,5s",
                                       "10s\n",
                                       std::string("1\0s", 3)};
    for (const auto& text : bad) {
        INFO(text);
        CHECK_FALSE(parseDuration(text).has_value());
    }
}

TEST_CASE("parseSize accepts binary and decimal units") {
    CHECK(parseSize("512") == 512u);
    CHECK(parseSize("0") == 0u);
    CHECK(parseSize("512B") == 512u);
    CHECK(parseSize("64KiB") == 65'536u);
    CHECK(parseSize("1MiB") == 1'048'576u);
    CHECK(parseSize("1GiB") == 1'073'741'824u);
    CHECK(parseSize("10KB") == 10'000u);
    CHECK(parseSize("10kB") == 10'000u);
    CHECK(parseSize("2MB") == 2'000'000u);
    CHECK(parseSize("1.5KiB") == 1536u);
    CHECK(parseSize("1TiB") == 1'099'511'627'776ull);
}

TEST_CASE("parseSize refuses bad values") {
    for (const char* bad :
         {"", "KiB", "1.5", "0.5B", "1.1KiB", "10 KiB", "10kib", "10K", "10Ki", "-1", "1e3", "0x10",
          "99999999999999999999", "20000000TiB", "1MiB/s", " 1"}) {
        INFO(bad);
        CHECK_FALSE(parseSize(bad).has_value());
    }
}

TEST_CASE("parseRate: counts, bytes, periods and unlimited") {
    CHECK(parseRate("100/s")->perSecond == Approx(100));
    CHECK(parseRate("6000/m")->perSecond == Approx(100));
    CHECK(parseRate("3600/h")->perSecond == Approx(1));
    CHECK(parseRate("5/10s")->perSecond == Approx(0.5));
    CHECK(parseRate("1/500ms")->perSecond == Approx(2));
    CHECK(parseRate("86400/d")->perSecond == Approx(1));
    CHECK(parseRate("1MiB/s")->perSecond == Approx(1'048'576));
    CHECK(parseRate("64KiB/s")->perSecond == Approx(65'536));
    CHECK(parseRate("100KB/m")->perSecond == Approx(100'000.0 / 60));
    CHECK(parseRate("0")->unlimited());
    CHECK(parseRate("unlimited")->unlimited());
    CHECK_FALSE(parseRate("1/h")->unlimited());

    auto bytes = parseRateSpec("1MiB/s");
    REQUIRE(bytes);
    CHECK(bytes->bytes);
    auto count = parseRateSpec("100/s");
    REQUIRE(count);
    CHECK_FALSE(count->bytes);
}

TEST_CASE("parseRate refuses bad values") {
    for (const char* bad :
         {"", "100", "100/", "/s", "0/s", "100/0s", "100/x", "100/sec", "100 /s", "-5/s", "1.5/s/s",
          "Unlimited", "none", "100/s ", "1MiB", "100/-1s", "1//s"}) {
        INFO(bad);
        CHECK_FALSE(parseRate(bad).has_value());
    }
}

TEST_CASE("parseHostPort: IPv4, bracketed IPv6, host names") {
    auto v4 = parseHostPort("0.0.0.0:8883");
    REQUIRE(v4);
    CHECK(v4->host == "0.0.0.0");
    CHECK(v4->port == 8883);
    auto v6 = parseHostPort("[::]:8883");
    REQUIRE(v6);
    CHECK(v6->host == "::");
    CHECK(v6->port == 8883);
    CHECK(parseHostPort("[0:0::0]:1")->host == "::");  // canonical, for clash checks
    CHECK(parseHostPort("[fe80::1]:65535")->port == 65535);
    auto name = parseHostPort("localhost:1883");
    REQUIRE(name);
    CHECK(name->host == "localhost");
    CHECK(parseHostPort("mqtt-broker_1.internal:1883")->host == "mqtt-broker_1.internal");
    CHECK(parseHostPort("127.0.0.1:0")->port == 0);
}

TEST_CASE("parseHostPort refuses bad values") {
    for (const char* bad : {"",
                            "8883",
                            ":8883",
                            "localhost",
                            "localhost:",
                            "localhost:65536",
                            "localhost:-1",
                            "localhost:88a",
                            "localhost:+1",
                            "::1:8883",
                            "[::1]8883",
                            "[::1:8883",
                            "[127.0.0.1]:1",
                            "[zz::]:1",
                            "10.0.0.256:1",
                            "1.2.3:1",
                            "bad host:1",
                            "-x:1",
                            "x-:1",
                            "a..b:1",
                            "host:000001",
                            "http://x:1"}) {
        INFO(bad);
        CHECK_FALSE(parseHostPort(bad).has_value());
    }
}

TEST_CASE("HostPort::toString brackets IPv6") {
    CHECK(HostPort{"0.0.0.0", 8883}.toString() == "0.0.0.0:8883");
    CHECK(HostPort{"::", 8883}.toString() == "[::]:8883");
    CHECK(HostPort{"localhost", 1883}.toString() == "localhost:1883");
    for (const char* text : {"0.0.0.0:8883", "[::]:8883", "[fe80::1]:1", "localhost:1883"}) {
        CHECK(parseHostPort(text)->toString() == text);
    }
}

TEST_CASE("ConfigError::toString") {
    CHECK(ConfigError{"/etc/moat.yaml", 12, "bad"}.toString() == "/etc/moat.yaml:12: bad");
    CHECK(ConfigError{"/etc/moat.yaml", 0, "bad"}.toString() == "/etc/moat.yaml: bad");
}

TEST_CASE("parseCidr normalises and refuses host bits") {
    CHECK(parseCidr("10.0.0.0/8").normalized == "10.0.0.0/8");
    CHECK(parseCidr("192.168.1.7").normalized == "192.168.1.7/32");
    CHECK(parseCidr("fd00::/8").normalized == "fd00::/8");
    CHECK(parseCidr("0:0::0/0").normalized == "::/0");
    CHECK(parseCidr("::1").normalized == "::1/128");
    CHECK(parseCidr("0.0.0.0/0").ok());
    CHECK(parseCidr("10.1.2.3/8").error == "host bits are set (did you mean 10.0.0.0/8?)");
    for (const char* bad : {"", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0/8",
                            "host/8", "10.0.0.0/8/8", "10.0.0.0/ 8"}) {
        INFO(bad);
        CHECK_FALSE(parseCidr(bad).ok());
    }
}

TEST_CASE("parseBool, parseUint, parseDouble") {
    CHECK(parseBool("true") == true);
    CHECK(parseBool("off") == false);
    CHECK(parseBool("No") == false);
    CHECK_FALSE(parseBool("1").has_value());
    CHECK_FALSE(parseBool("tru").has_value());
    CHECK(parseUint("0", 10) == 0u);
    CHECK(parseUint("10", 10) == 10u);
    CHECK_FALSE(parseUint("11", 10).has_value());
    CHECK_FALSE(parseUint("-1", 10).has_value());
    CHECK_FALSE(parseUint("", 10).has_value());
    CHECK_FALSE(parseUint("18446744073709551616", UINT64_MAX).has_value());
    CHECK(parseUint("18446744073709551615", UINT64_MAX) == UINT64_MAX);
    CHECK(parseDouble("2.5") == 2.5);
    CHECK_FALSE(parseDouble("nan").has_value());
    CHECK_FALSE(parseDouble("inf").has_value());
    CHECK_FALSE(parseDouble("2.5x").has_value());
}

TEST_CASE("host name and address literals") {
    CHECK(isIpv4Literal("127.0.0.1"));
    CHECK_FALSE(isIpv4Literal("127.0.0.1.1"));
    CHECK(isIpv6Literal("::1"));
    CHECK_FALSE(isIpv6Literal("127.0.0.1"));
    CHECK(isHostName("broker"));
    CHECK(isHostName("a.b-c.d"));
    CHECK_FALSE(isHostName("1.2.3.4"));  // numeric: an address, never a name
    CHECK_FALSE(isHostName(std::string(64, 'a')));
    CHECK_FALSE(isHostName("a."));
}
