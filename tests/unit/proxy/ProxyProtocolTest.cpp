// PROXY protocol v1/v2 parser: vectors from the spec, every split point, malformed and
// truncated headers, TLVs, and the v2 encoder round trip.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "gateway/proxy/ProxyProtocol.h"

using namespace moat::proxy;
using Bytes = std::vector<uint8_t>;

namespace {

const Bytes kSig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

Bytes text(const std::string& s) {
    return Bytes(s.begin(), s.end());
}

Bytes v2(uint8_t verCmd, uint8_t fam, const Bytes& payload) {
    Bytes b = kSig;
    b.push_back(verCmd);
    b.push_back(fam);
    b.push_back(static_cast<uint8_t>(payload.size() >> 8));
    b.push_back(static_cast<uint8_t>(payload.size() & 0xFF));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
}

Bytes inet4Block() {  // 192.0.2.1:4000 -> 198.51.100.2:8883
    return {192, 0, 2, 1, 198, 51, 100, 2, 0x0F, 0xA0, 0x22, 0xB3};
}

Bytes inet6Block() {  // [2001:db8::1]:4000 -> [2001:db8::2]:8883
    Bytes b(36, 0);
    b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = 0xb8, b[15] = 1;
    b[16] = 0x20, b[17] = 0x01, b[18] = 0x0d, b[19] = 0xb8, b[31] = 2;
    b[32] = 0x0F, b[33] = 0xA0, b[34] = 0x22, b[35] = 0xB3;
    return b;
}

Bytes tlv(uint8_t type, const Bytes& value) {
    Bytes b = {type, static_cast<uint8_t>(value.size() >> 8),
               static_cast<uint8_t>(value.size() & 0xFF)};
    b.insert(b.end(), value.begin(), value.end());
    return b;
}

Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

ParseResult parse(const Bytes& b, Versions v = Versions::Any) {
    return parseProxyHeader(b.data(), b.size(), v);
}

// Every strict prefix is NeedMore; the whole is Done with the header's length, also when
// more bytes (the TLS ClientHello) follow in the same read.
ParseResult parseAtEverySplit(const Bytes& header, Versions v = Versions::Any) {
    for (size_t k = 0; k < header.size(); ++k) {
        INFO("prefix of " << k << " bytes");
        REQUIRE(parseProxyHeader(header.data(), k, v).status == ParseStatus::NeedMore);
    }
    Bytes withTail = cat(header, {0x16, 0x03, 0x01, 0x00});
    ParseResult tail = parse(withTail, v);
    REQUIRE(tail.status == ParseStatus::Done);
    REQUIRE(tail.length == header.size());
    ParseResult r = parse(header, v);
    REQUIRE(r.status == ParseStatus::Done);
    REQUIRE(r.length == header.size());
    return r;
}

// A malformed header is never Done at any prefix, and the full input is an Error.
ParseError errorAtEverySplit(const Bytes& bad, Versions v = Versions::Any) {
    ParseError first = ParseError::None;
    for (size_t k = 0; k <= bad.size(); ++k) {
        ParseResult r = parseProxyHeader(bad.data(), k, v);
        INFO("prefix of " << k << " bytes");
        REQUIRE(r.status != ParseStatus::Done);
        if (r.status == ParseStatus::Error && first == ParseError::None) first = r.error;
        if (first != ParseError::None) REQUIRE(r.status == ParseStatus::Error);
    }
    REQUIRE(first != ParseError::None);
    return first;
}

}  // namespace

TEST_CASE("v1 TCP4 header", "[proxy][v1]") {
    auto h = text("PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883\r\n");
    ParseResult r = parseAtEverySplit(h, Versions::V1);
    CHECK(r.header.version == 1);
    CHECK_FALSE(r.header.local);
    CHECK(r.header.source.family == AF_INET);
    CHECK(r.header.source.text() == "192.0.2.1:4000");
    CHECK(r.header.destination.text() == "198.51.100.2:8883");
    CHECK(r.header.source.ipText() == "192.0.2.1");
}

TEST_CASE("v1 TCP6 header", "[proxy][v1]") {
    auto h = text("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n");
    ParseResult r = parseAtEverySplit(h);
    CHECK(r.header.source.family == AF_INET6);
    CHECK(r.header.source.text() == "[2001:db8::1]:65535");
    CHECK(r.header.destination.text() == "[2001:db8::2]:0");
}

TEST_CASE("v1 TCP6 with an IPv4-mapped address is the IPv4 host", "[proxy][v1]") {
    ParseResult r = parseAtEverySplit(text("PROXY TCP6 ::ffff:192.0.2.9 ::1 1 2\r\n"));
    CHECK(r.header.source.family == AF_INET);
    CHECK(r.header.source.text() == "192.0.2.9:1");
}

TEST_CASE("v1 UNKNOWN means the socket addresses apply", "[proxy][v1]") {
    ParseResult r = parseAtEverySplit(text("PROXY UNKNOWN\r\n"));
    CHECK(r.header.local);
    CHECK_FALSE(r.header.source.valid());
    // Whatever follows UNKNOWN on the line is ignored (spec §2.1).
    r = parseAtEverySplit(text("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n"));
    CHECK(r.header.local);
}

TEST_CASE("v1 line of the maximum length, and one byte more", "[proxy][v1]") {
    std::string line = "PROXY UNKNOWN ";
    line += std::string(kV1MaxLength - line.size() - 2, 'x') + "\r\n";
    REQUIRE(line.size() == kV1MaxLength);
    parseAtEverySplit(text(line));
    std::string longer = "PROXY UNKNOWN " + std::string(kV1MaxLength, 'x') + "\r\n";
    CHECK(errorAtEverySplit(text(longer)) == ParseError::V1LineTooLong);
}

TEST_CASE("v1 malformed lines", "[proxy][v1]") {
    struct Case {
        const char* line;
        ParseError error;
    };
    const Case cases[] = {
        {"PROXY TCP4 192.0.2.1 198.51.100.2 4000\r\n", ParseError::V1BadLine},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883 9\r\n", ParseError::V1BadLine},
        {"PROXY TCP4  192.0.2.1 198.51.100.2 4000 8883\r\n", ParseError::V1BadLine},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883 \r\n", ParseError::V1BadLine},
        {"PROXY UDP4 192.0.2.1 198.51.100.2 4000 8883\r\n", ParseError::V1BadLine},
        {"PROXY tcp4 192.0.2.1 198.51.100.2 4000 8883\r\n", ParseError::V1BadLine},
        {"PROXY \r\n", ParseError::V1BadLine},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883\n", ParseError::V1BadLine},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883\rX", ParseError::V1BadLine},
        {"PROXY TCP4 192.0.2.1\t198.51.100.2 4000 8883\r\n", ParseError::V1BadLine},
        {"PROXY TCP4 2001:db8::1 198.51.100.2 4000 8883\r\n", ParseError::V1BadAddress},
        {"PROXY TCP6 192.0.2.1 2001:db8::2 4000 8883\r\n", ParseError::V1BadAddress},
        {"PROXY TCP4 192.0.2.256 198.51.100.2 4000 8883\r\n", ParseError::V1BadAddress},
        {"PROXY TCP4 192.0.2 198.51.100.2 4000 8883\r\n", ParseError::V1BadAddress},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 65536 8883\r\n", ParseError::V1BadPort},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 04000 8883\r\n", ParseError::V1BadPort},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 -1 8883\r\n", ParseError::V1BadPort},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 4000 +8883\r\n", ParseError::V1BadPort},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        CHECK(errorAtEverySplit(text(c.line)) == c.error);
    }
    // A NUL in the middle of the line.
    Bytes nul = text("PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883\r\n");
    nul[12] = 0;
    CHECK(errorAtEverySplit(nul) == ParseError::V1BadLine);
}

TEST_CASE("v2 PROXY TCP4", "[proxy][v2]") {
    ParseResult r = parseAtEverySplit(v2(0x21, 0x11, inet4Block()), Versions::V2);
    CHECK(r.header.version == 2);
    CHECK_FALSE(r.header.local);
    CHECK(r.header.source.text() == "192.0.2.1:4000");
    CHECK(r.header.destination.text() == "198.51.100.2:8883");
}

TEST_CASE("v2 PROXY TCP6", "[proxy][v2]") {
    ParseResult r = parseAtEverySplit(v2(0x21, 0x21, inet6Block()));
    CHECK(r.header.source.text() == "[2001:db8::1]:4000");
    CHECK(r.header.destination.text() == "[2001:db8::2]:8883");
}

TEST_CASE("v2 LOCAL: the balancer's own connection (health check)", "[proxy][v2]") {
    ParseResult r = parseAtEverySplit(v2(0x20, 0x00, {}));
    CHECK(r.header.local);
    CHECK_FALSE(r.header.source.valid());
    // LOCAL may still carry an address block and TLVs: all ignored, all consumed.
    r = parseAtEverySplit(v2(0x20, 0x11, cat(inet4Block(), {0xEE, 0xEE})));
    CHECK(r.header.local);
}

TEST_CASE("v2 PROXY with UNSPEC or AF_UNIX family keeps the socket address", "[proxy][v2]") {
    CHECK(parseAtEverySplit(v2(0x21, 0x00, {})).header.local);
    CHECK(parseAtEverySplit(v2(0x21, 0x31, Bytes(216, 'a'))).header.local);
}

TEST_CASE("v2 TLVs are skipped", "[proxy][v2]") {
    // AWS NLB: PP2_TYPE_AWS (0xEA) with the VPC endpoint id; ALPN; authority; NOOP padding.
    Bytes payload = inet4Block();
    payload = cat(payload, tlv(0xEA, cat({0x01}, text("vpce-08d2bf15fac5001c9"))));
    payload = cat(payload, tlv(0x01, text("mqtt")));
    payload = cat(payload, tlv(0x02, text("broker.example.com")));
    payload = cat(payload, tlv(0x04, Bytes(5, 0)));
    payload = cat(payload, tlv(0x05, {}));  // zero-length value
    ParseResult r = parseAtEverySplit(v2(0x21, 0x11, payload));
    CHECK(r.header.source.text() == "192.0.2.1:4000");
    // TCP6 with a TLV as well.
    r = parseAtEverySplit(v2(0x21, 0x21, cat(inet6Block(), tlv(0x03, {1, 2, 3, 4}))));
    CHECK(r.header.source.text() == "[2001:db8::1]:4000");
}

TEST_CASE("v2 malformed headers", "[proxy][v2]") {
    CHECK(errorAtEverySplit(v2(0x11, 0x11, inet4Block())) == ParseError::V2BadVersion);
    CHECK(errorAtEverySplit(v2(0x31, 0x11, inet4Block())) == ParseError::V2BadVersion);
    CHECK(errorAtEverySplit(v2(0x22, 0x11, inet4Block())) == ParseError::V2BadCommand);
    CHECK(errorAtEverySplit(v2(0x2F, 0x11, inet4Block())) == ParseError::V2BadCommand);
    CHECK(errorAtEverySplit(v2(0x21, 0x12, inet4Block())) == ParseError::V2BadFamily);  // UDP
    CHECK(errorAtEverySplit(v2(0x21, 0x22, inet6Block())) == ParseError::V2BadFamily);
    CHECK(errorAtEverySplit(v2(0x21, 0x41, inet4Block())) == ParseError::V2BadFamily);
    CHECK(errorAtEverySplit(v2(0x21, 0x10, inet4Block())) == ParseError::V2BadFamily);
    // Address block shorter than the family needs.
    CHECK(errorAtEverySplit(v2(0x21, 0x11, Bytes(11, 0))) == ParseError::V2BadLength);
    CHECK(errorAtEverySplit(v2(0x21, 0x21, Bytes(12, 0))) == ParseError::V2BadLength);
    CHECK(errorAtEverySplit(v2(0x21, 0x31, Bytes(36, 0))) == ParseError::V2BadLength);
    // TLV running past the end; a stray byte or two that cannot hold a TLV header.
    CHECK(errorAtEverySplit(v2(0x21, 0x11, cat(inet4Block(), {0x01, 0x00, 0x05, 'a'}))) ==
          ParseError::V2BadTlv);
    CHECK(errorAtEverySplit(v2(0x21, 0x11, cat(inet4Block(), {0x01, 0xFF, 0xFF}))) ==
          ParseError::V2BadTlv);
    CHECK(errorAtEverySplit(v2(0x21, 0x11, cat(inet4Block(), {0x01}))) == ParseError::V2BadTlv);
    CHECK(errorAtEverySplit(v2(0x21, 0x11, cat(inet4Block(), {0x01, 0x00}))) ==
          ParseError::V2BadTlv);
}

TEST_CASE("v2 oversized header is refused from its fixed part, before buffering", "[proxy][v2]") {
    Bytes h = kSig;
    h.insert(h.end(), {0x21, 0x11, 0xFF, 0xFF});
    ParseResult r = parse(h);
    CHECK(r.status == ParseStatus::Error);
    CHECK(r.error == ParseError::V2BadLength);
    // The largest accepted payload parses.
    parseAtEverySplit(v2(0x21, 0x11, cat(inet4Block(), tlv(0x04, Bytes(kMaxV2Payload - 15, 0)))));
    Bytes over = v2(0x21, 0x11, cat(inet4Block(), tlv(0x04, Bytes(kMaxV2Payload - 14, 0))));
    CHECK(parse(over).error == ParseError::V2BadLength);
}

TEST_CASE("bytes that are not a PROXY header fail at the first wrong byte", "[proxy]") {
    const Bytes clientHello = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    ParseResult r = parseProxyHeader(clientHello.data(), 1, Versions::Any);
    CHECK(r.status == ParseStatus::Error);
    CHECK(r.error == ParseError::NotProxyHeader);
    const Bytes mqttConnect = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T'};
    CHECK(parseProxyHeader(mqttConnect.data(), 1, Versions::V2).error ==
          ParseError::NotProxyHeader);
    CHECK(errorAtEverySplit(text("PROXZ TCP4")) == ParseError::NotProxyHeader);
    CHECK(errorAtEverySplit(text("GET / HTTP/1.1\r\n")) == ParseError::NotProxyHeader);
    // A v2 signature broken in its last byte.
    Bytes sig = kSig;
    sig[11] = 0x0B;
    CHECK(errorAtEverySplit(sig) == ParseError::NotProxyHeader);
}

TEST_CASE("a listener accepts only the versions it is configured for", "[proxy]") {
    auto h1 = text("PROXY TCP4 192.0.2.1 198.51.100.2 4000 8883\r\n");
    auto h2 = v2(0x21, 0x11, inet4Block());
    CHECK(parse(h1, Versions::V1).status == ParseStatus::Done);
    CHECK(parse(h1, Versions::V2).error == ParseError::VersionNotAllowed);
    CHECK(parse(h2, Versions::V2).status == ParseStatus::Done);
    CHECK(parse(h2, Versions::V1).error == ParseError::VersionNotAllowed);
    CHECK(parse(h1, Versions::Any).status == ParseStatus::Done);
    CHECK(parse(h2, Versions::Any).status == ParseStatus::Done);
    CHECK(errorAtEverySplit(h1, Versions::V2) == ParseError::VersionNotAllowed);
    CHECK(errorAtEverySplit(h2, Versions::V1) == ParseError::VersionNotAllowed);
}

TEST_CASE("empty input needs more", "[proxy]") {
    CHECK(parseProxyHeader(nullptr, 0, Versions::Any).status == ParseStatus::NeedMore);
}

namespace {
Address v4(const char* ip, uint16_t port) {
    Address a;
    a.family = AF_INET;
    inet_pton(AF_INET, ip, a.ip.data());
    a.port = port;
    return a;
}
Address v6(const char* ip, uint16_t port) {
    Address a;
    a.family = AF_INET6;
    inet_pton(AF_INET6, ip, a.ip.data());
    a.port = port;
    return a;
}
ProxyHeader roundTrip(const Address& src, const Address& dst, size_t expectLen) {
    uint8_t buf[kV2MaxEncoded];
    size_t n = encodeProxyV2(src, dst, buf);
    REQUIRE(n == expectLen);
    ParseResult r = parseAtEverySplit(Bytes(buf, buf + n), Versions::V2);
    return r.header;
}
}  // namespace

TEST_CASE("v2 encoder round trip", "[proxy][encode]") {
    ProxyHeader h = roundTrip(v4("203.0.113.7", 51000), v4("10.1.2.3", 8883), 28);
    CHECK(h.source == v4("203.0.113.7", 51000));
    CHECK(h.destination == v4("10.1.2.3", 8883));

    h = roundTrip(v6("2001:db8::7", 1), v6("fd00::1", 65535), 52);
    CHECK(h.source == v6("2001:db8::7", 1));
    CHECK(h.destination == v6("fd00::1", 65535));

    // Mixed families travel as IPv6; IPv4 comes back as IPv4.
    h = roundTrip(v4("203.0.113.7", 2), v6("fd00::1", 3), 52);
    CHECK(h.source == v4("203.0.113.7", 2));
    CHECK(h.destination == v6("fd00::1", 3));

    // Unknown destination: zeros.
    h = roundTrip(v4("203.0.113.7", 2), Address{}, 28);
    CHECK(h.destination == v4("0.0.0.0", 0));

    // No source: LOCAL.
    h = roundTrip(Address{}, v4("10.1.2.3", 8883), 16);
    CHECK(h.local);
}

TEST_CASE("v2 encoder bytes match the spec layout", "[proxy][encode]") {
    uint8_t buf[kV2MaxEncoded];
    size_t n = encodeProxyV2(v4("192.0.2.1", 4000), v4("198.51.100.2", 8883), buf);
    CHECK(Bytes(buf, buf + n) == v2(0x21, 0x11, inet4Block()));
}

TEST_CASE("socket addresses: IPv4-mapped IPv6 becomes IPv4", "[proxy][address]") {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    in6.sin6_port = htons(1883);
    Address a = addressFromSockaddr(reinterpret_cast<sockaddr*>(&in6));
    CHECK(a == v4("127.0.0.1", 1883));
    CHECK(a.text() == "127.0.0.1:1883");

    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    CHECK(addressFromSockaddr(reinterpret_cast<sockaddr*>(&in6)).text() == "[::1]:1883");

    sockaddr_in in{};
    in.sin_family = AF_INET;
    inet_pton(AF_INET, "10.0.0.1", &in.sin_addr);
    in.sin_port = htons(7);
    CHECK(addressFromSockaddr(reinterpret_cast<sockaddr*>(&in)).text() == "10.0.0.1:7");
    CHECK_FALSE(addressFromSockaddr(nullptr).valid());
    CHECK(Address{}.text().empty());
}
