#include <catch2/catch.hpp>
#include <string>

#include "gateway/cluster/ClusterAuth.h"

using namespace moat::cluster;

namespace {
const std::string kKey(64, 'k');
const std::string kOther(64, 'o');
constexpr uint64_t kNow = 1700000000000ull;
}  // namespace

TEST_CASE("a sealed event opens with the key and yields the line", "[auth]") {
    std::string line = "moat1 ban r1 ip 192.0.2.1 300000 300000";
    std::string sealed = sealEvent(line, kKey, kNow);
    CHECK(sealed != line);
    OpenedEvent o = openEvent(sealed, kKey, kNow + 1000);
    CHECK(o.result == Authenticity::Ok);
    CHECK(o.line == line);
}

TEST_CASE("with a key: unsigned, forged, altered and stale events are refused", "[auth]") {
    std::string line = "moat1 ban r1 ip 192.0.2.1 300000 300000";
    CHECK(openEvent(line, kKey, kNow).result == Authenticity::Unsigned);
    CHECK(openEvent(sealEvent(line, kOther, kNow), kKey, kNow).result ==
          Authenticity::BadSignature);
    std::string sealed = sealEvent(line, kKey, kNow);
    std::string altered = sealed;
    altered.replace(altered.find("300000"), 6, "999999");
    CHECK(openEvent(altered, kKey, kNow).result == Authenticity::BadSignature);
    // The send time is covered too: a replay later (or a forged time) does not pass.
    std::string retimed = sealed;
    retimed.replace(retimed.find(" t=") + 3, 13, std::to_string(kNow + 5));
    CHECK(openEvent(retimed, kKey, kNow).result == Authenticity::BadSignature);
    CHECK(openEvent(sealed, kKey, kNow + kMaxEventSkewMs + 1).result == Authenticity::Stale);
    CHECK(openEvent(sealed, kKey, kNow - kMaxEventSkewMs - 1).result == Authenticity::Stale);
    CHECK(openEvent(sealed, kKey, kNow + kMaxEventSkewMs).result == Authenticity::Ok);
}

TEST_CASE("without a key: events are accepted as before, an envelope is stripped", "[auth]") {
    std::string line = "moat1 hb r1";
    CHECK(sealEvent(line, "", kNow) == line);
    OpenedEvent o = openEvent(line, "", kNow);
    CHECK(o.result == Authenticity::Ok);
    CHECK(o.line == line);
    const std::string sealed = sealEvent(line, kKey, kNow);  // o.line views into it
    o = openEvent(sealed, "", kNow);
    CHECK(o.result == Authenticity::Ok);
    CHECK(o.line == line);
    // A field that merely looks like the envelope is part of the line.
    std::string kick = "moat1 kick r1 t=5 s=abc -";
    CHECK(openEvent(kick, "", kNow).line == kick);
    CHECK(openEvent(kick, kKey, kNow).result == Authenticity::Unsigned);
}

TEST_CASE("ban records bind the Redis key, the duration and the end", "[auth]") {
    const std::string key = "moat:ban:ip:192.0.2.1";
    std::string v = sealBan(kKey, key, 300000, kNow + 300000);
    BanRecord r = openBan(v, kKey, key);
    CHECK(r.result == Authenticity::Ok);
    CHECK(r.durationMs == 300000);
    REQUIRE(r.endUnixMs);
    CHECK(*r.endUnixMs == kNow + 300000);
    CHECK(openBan(v, kKey, "moat:ban:ip:192.0.2.2").result == Authenticity::BadSignature);
    CHECK(openBan(v, kOther, key).result == Authenticity::BadSignature);
    std::string longer = v;
    longer.replace(longer.find(' ') + 1, 13, std::to_string(kNow + 999999));
    CHECK(openBan(longer, kKey, key).result == Authenticity::BadSignature);
    CHECK(openBan("300000", kKey, key).result == Authenticity::Unsigned);
    CHECK(openBan("junk", kKey, key).result == Authenticity::Malformed);
    CHECK(openBan("", "", key).result == Authenticity::Malformed);
    // Without a key: the plain duration, as written before key_file existed.
    CHECK(sealBan("", key, 300000, kNow) == "300000");
    r = openBan("300000", "", key);
    CHECK(r.result == Authenticity::Ok);
    CHECK(r.durationMs == 300000);
    CHECK_FALSE(r.endUnixMs);
}

TEST_CASE("connection records bind the hash and the address", "[auth]") {
    const std::string hash = "moat:conn:r1";
    std::string v = sealConn(kKey, hash, "192.0.2.1", 7);
    ConnRecord r = openConn(v, kKey, hash, "192.0.2.1");
    CHECK(r.result == Authenticity::Ok);
    CHECK(r.count == 7);
    CHECK(openConn(v, kKey, hash, "192.0.2.2").result == Authenticity::BadSignature);
    CHECK(openConn(v, kKey, "moat:conn:r2", "192.0.2.1").result == Authenticity::BadSignature);
    CHECK(openConn("7", kKey, hash, "192.0.2.1").result == Authenticity::Unsigned);
    CHECK(openConn("4294967296", "", hash, "192.0.2.1").result == Authenticity::Malformed);
    CHECK(openConn("7", "", hash, "192.0.2.1").count == 7);
}

TEST_CASE("IP subjects are address literals", "[auth]") {
    CHECK(isIpLiteral("192.0.2.1"));
    CHECK(isIpLiteral("2001:db8::1"));
    CHECK(isIpLiteral("::ffff:192.0.2.1"));
    CHECK_FALSE(isIpLiteral(""));
    CHECK_FALSE(isIpLiteral("example.com"));
    CHECK_FALSE(isIpLiteral("192.0.2.1 "));
    CHECK_FALSE(isIpLiteral(std::string(100, '1')));
    CHECK_FALSE(isIpLiteral(std::string("192.0.2.1\0x", 11)));
}

TEST_CASE("owner records bind the Redis key, the identity and the end", "[auth]") {
    const std::string key = "moat:owner:cid";
    std::string v = sealOwner(kKey, key, "device 1", kNow + 1000);
    OwnerRecord r = openOwner(v, kKey, key);
    CHECK(r.result == Authenticity::Ok);
    CHECK(r.identity == "device 1");
    CHECK(r.endUnixMs == kNow + 1000);
    CHECK(openOwner(v, kKey, "moat:owner:other").result == Authenticity::BadSignature);
    CHECK(openOwner(v, kOther, key).result == Authenticity::BadSignature);
    std::string swapped = sealOwner(kKey, key, "device2", kNow + 1000);
    swapped = "device2" + v.substr(v.find(' '));
    CHECK(openOwner(swapped, kKey, key).result == Authenticity::BadSignature);
    CHECK(openOwner("device2", kKey, key).result == Authenticity::Unsigned);
    // Without a key the bare identity is the record.
    OwnerRecord plain = openOwner(sealOwner("", key, "d 1", 0), "", key);
    CHECK(plain.result == Authenticity::Ok);
    CHECK(plain.identity == "d 1");
    CHECK(openOwner("", "", key).result == Authenticity::Malformed);
}
