#include <catch2/catch.hpp>
#include <string>

#include "gateway/websocket/Upgrade.h"

using namespace moat::websocket;

namespace {

const std::string kKey = "dGhlIHNhbXBsZSBub25jZQ==";

std::string request(const std::string& extra = "", const std::string& path = "/mqtt") {
    return "GET " + path +
           " HTTP/1.1\r\nHost: gw.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " +
           kKey + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n" + extra +
           "\r\n";
}

// A request built from explicit header lines (nothing added).
std::string raw(const std::string& lines) {
    return "GET /mqtt HTTP/1.1\r\n" + lines + "\r\n";
}

UpgradeResult parse(const std::string& s, const UpgradeOptions& o = {}) {
    return parseUpgrade(reinterpret_cast<const uint8_t*>(s.data()), s.size(), o);
}

void requireRefused(const UpgradeResult& r, int status, const std::string& reason) {
    REQUIRE(r.status == UpgradeStatus::Refused);
    CHECK(r.httpStatus == status);
    CHECK(std::string(r.reason) == reason);
    CHECK(r.response.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
    CHECK(r.response.find("Connection: close\r\n") != std::string::npos);
}

}  // namespace

TEST_CASE("accept key: the RFC 6455 example") {
    CHECK(acceptKey(kKey) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("a valid upgrade is accepted and answered 101 with the subprotocol echoed") {
    const std::string req = request() + "\x82\x80";  // the first frame follows the head
    UpgradeResult r = parse(req);
    REQUIRE(r.status == UpgradeStatus::Accepted);
    CHECK(r.httpStatus == 101);
    CHECK(r.headLength == req.size() - 2);
    CHECK(r.subprotocol == "mqtt");
    CHECK(r.response ==
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
    CHECK_FALSE(r.forwarded.valid());
}

TEST_CASE("every strict prefix of a valid head is NeedMore") {
    const std::string req = request();
    for (size_t n = 0; n < req.size(); ++n) {
        INFO("prefix " << n);
        CHECK(parse(req.substr(0, n)).status == UpgradeStatus::NeedMore);
    }
    CHECK(parse(req).status == UpgradeStatus::Accepted);
}

TEST_CASE("header names and tokens are case-insensitive; lists may span headers") {
    const std::string req =
        raw("host: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
            "sec-websocket-key: " +
            kKey +
            "\r\nsec-websocket-version: 13\r\nsec-websocket-protocol: chat\r\n"
            "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n");
    UpgradeResult r = parse(req);
    REQUIRE(r.status == UpgradeStatus::Accepted);
    CHECK(r.subprotocol == "mqttv3.1");  // the client's first MQTT choice
}

TEST_CASE("a query string does not change the path") {
    CHECK(parse(request("", "/mqtt?x=1")).status == UpgradeStatus::Accepted);
}

TEST_CASE("permessage-deflate is declined: not answered") {
    UpgradeResult r =
        parse(request("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
    REQUIRE(r.status == UpgradeStatus::Accepted);
    CHECK(r.response.find("Extensions") == std::string::npos);
}

TEST_CASE("refusals") {
    SECTION("another path: 404") {
        requireRefused(parse(request("", "/other")), 404, "path");
        requireRefused(parse(request("", "/mqtt/")), 404, "path");
    }
    SECTION("not an upgrade: 426 with the version") {
        UpgradeResult r = parse(raw("Host: x\r\n"));
        requireRefused(r, 426, "not_upgrade");
        CHECK(r.response.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
        requireRefused(parse(raw("Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                                 "Sec-WebSocket-Key: " +
                                 kKey + "\r\nSec-WebSocket-Version: 13\r\n")),
                       426, "not_upgrade");
        requireRefused(parse(raw("Host: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n")), 426,
                       "not_upgrade");
    }
    SECTION("missing or other version: 426 with Sec-WebSocket-Version: 13") {
        const std::string base =
            "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Key: " +
            kKey + "\r\n";
        UpgradeResult r = parse(raw(base));
        requireRefused(r, 426, "version");
        CHECK(r.response.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
        requireRefused(parse(raw(base + "Sec-WebSocket-Version: 8\r\n")), 426, "version");
    }
    SECTION("bad key: 400") {
        for (const char* key : {"", "abc", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZR==",
                                "dGhlIHNhbXBsZSBub25jZQ==x", "dGhlIHNhbXBsZSBub25j*Q=="}) {
            INFO(key);
            requireRefused(parse(raw("Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                                     "mqtt\r\nSec-WebSocket-Key: " +
                                     std::string(key) + "\r\n")),
                           400, "key");
        }
    }
    SECTION("no MQTT subprotocol: 400") {
        requireRefused(parse(raw("Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
                                 kKey + "\r\n")),
                       400, "subprotocol");
        requireRefused(parse(raw("Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: MQTT, "
                                 "chat\r\nSec-WebSocket-Key: " +
                                 kKey + "\r\n")),
                       400, "subprotocol");
    }
    SECTION("malformed heads: 400") {
        requireRefused(parse("GET /mqtt HTTP/1.1\nHost: x\n\n"), 400, "line_end");
        requireRefused(parse("GET /mqtt HTTP/1.1\r\nHost: x\r\x01"), 400, "line_end");
        requireRefused(parse("GET /mqtt HTTP/1.1\r\nHost: \x01x\r\n\r\n"), 400,
                       "control_character");
        requireRefused(parse(request("X-A: 1\r\n folded\r\n")), 400, "header_syntax");
        requireRefused(parse(request("X-A : 1\r\n")), 400, "header_syntax");
        requireRefused(parse(request("no colon\r\n")), 400, "header_syntax");
        requireRefused(parse(request("Host: y\r\n")), 400, "duplicate_header");
        requireRefused(parse(request("Sec-WebSocket-Key: " + kKey + "\r\n")), 400,
                       "duplicate_header");
        requireRefused(parse("GET /mqtt HTTP/1.0\r\nHost: x\r\n\r\n"), 400, "http_version");
        requireRefused(parse("GET  /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "request_line");
        requireRefused(parse("GET http://x/mqtt HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
                       "request_target");
        requireRefused(parse("POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "not_http");
        requireRefused(parse("POST /mqtt HTTP/1.1\r\n"), 400, "not_http");
        requireRefused(parse(raw("Upgrade: websocket\r\n")), 400, "no_host");
        requireRefused(parse("\r\n\r\n"), 400, "not_http");
        requireRefused(parse("GET /mqtt\r\nHost: x\r\n\r\n"), 400, "request_line");
    }
    SECTION("not HTTP at all is refused at its first byte") {
        requireRefused(parse(std::string("\x10", 1)), 400, "not_http");
        requireRefused(parse("GEX"), 400, "not_http");
    }
    SECTION("a head of 8 KiB without its end: 400") {
        std::string big = "GET /mqtt HTTP/1.1\r\nX-Pad: " + std::string(kMaxHead, 'a');
        CHECK(parse(big.substr(0, kMaxHead - 1)).status == UpgradeStatus::NeedMore);
        requireRefused(parse(big.substr(0, kMaxHead)), 400, "head_too_large");
        requireRefused(parse(big), 400, "head_too_large");
    }
    SECTION("too many headers: 400") {
        std::string extra;
        for (int i = 0; i < 70; ++i) extra += "X-" + std::to_string(i) + ": v\r\n";
        requireRefused(parse(request(extra)), 400, "too_many_headers");
    }
}

TEST_CASE("Origin allowlist") {
    UpgradeOptions o;
    o.allowedOrigins = std::vector<std::string>{"https://dash.example.com"};
    CHECK(parse(request(), o).status == UpgradeStatus::Accepted);  // no Origin: not a browser
    CHECK(parse(request("Origin: https://dash.example.com\r\n"), o).status ==
          UpgradeStatus::Accepted);
    CHECK(parse(request("Origin: HTTPS://Dash.Example.com\r\n"), o).status ==
          UpgradeStatus::Accepted);
    requireRefused(parse(request("Origin: https://evil.example.com\r\n"), o), 403, "origin");
    requireRefused(parse(request("Origin: null\r\n"), o), 403, "origin");
    CHECK(parse(request("Origin: https://evil.example.com\r\n")).status ==
          UpgradeStatus::Accepted);  // no allowlist: any Origin
}

TEST_CASE("X-Forwarded-For: the rightmost untrusted entry") {
    std::string error;
    auto trusted = moat::proxy::CidrSet::parse({"10.0.0.0/8", "fd00::/8"}, error);
    REQUIRE(trusted);
    UpgradeOptions o;
    o.forwardedFor = true;
    o.trusted = &*trusted;
    SECTION("hops appended by trusted proxies are skipped") {
        UpgradeResult r = parse(
            request("X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nX-Forwarded-For: 10.1.2.3\r\n"), o);
        REQUIRE(r.status == UpgradeStatus::Accepted);
        CHECK(r.forwarded.ipText() == "203.0.113.7");
    }
    SECTION("all trusted: the leftmost") {
        UpgradeResult r = parse(request("X-Forwarded-For: 10.9.9.9, 10.1.1.1\r\n"), o);
        REQUIRE(r.status == UpgradeStatus::Accepted);
        CHECK(r.forwarded.ipText() == "10.9.9.9");
    }
    SECTION("ports and brackets as balancers write them") {
        CHECK(parse(request("X-Forwarded-For: 198.51.100.1:4711\r\n"), o).forwarded.ipText() ==
              "198.51.100.1");
        CHECK(parse(request("X-Forwarded-For: [2001:db8::1]:443\r\n"), o).forwarded.ipText() ==
              "2001:db8::1");
        CHECK(parse(request("X-Forwarded-For: ::ffff:192.0.2.1\r\n"), o).forwarded.ipText() ==
              "192.0.2.1");
    }
    SECTION("garbage: 400") {
        requireRefused(parse(request("X-Forwarded-For: unknown\r\n"), o), 400, "forwarded_for");
        requireRefused(parse(request("X-Forwarded-For: 1.2.3.4:x\r\n"), o), 400, "forwarded_for");
    }
    SECTION("without forwarded_for the header is ignored") {
        UpgradeResult r = parse(request("X-Forwarded-For: 203.0.113.7\r\n"));
        REQUIRE(r.status == UpgradeStatus::Accepted);
        CHECK_FALSE(r.forwarded.valid());
    }
}
