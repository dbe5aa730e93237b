#include <catch2/catch.hpp>

#include "gateway/cluster/ClusterEvent.h"

using namespace moat::cluster;
using std::chrono::milliseconds;

namespace {

ClusterEvent roundTrip(const ClusterEvent& e) {
    auto decoded = decodeEvent(encodeEvent(e));
    REQUIRE(decoded);
    return *decoded;
}

}  // namespace

TEST_CASE("field escaping round-trips every byte and never yields a space") {
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    std::string escaped = escapeField(all);
    CHECK(escaped.find(' ') == std::string::npos);
    for (unsigned char c : escaped) CHECK((c >= '!' && c <= '~'));
    auto back = unescapeField(escaped, 4096);
    REQUIRE(back);
    CHECK(*back == all);
    CHECK(escapeField("device-1@example.com") == "device-1@example.com");
    CHECK(escapeField("a b%c") == "a%20b%25c");
}

TEST_CASE("unescaping is strict") {
    CHECK_FALSE(unescapeField("%", 100));
    CHECK_FALSE(unescapeField("%2", 100));
    CHECK_FALSE(unescapeField("%zz", 100));
    CHECK_FALSE(unescapeField("a b", 100));                   // raw space
    CHECK_FALSE(unescapeField(std::string("a\0b", 3), 100));  // raw control byte
    CHECK_FALSE(unescapeField("abcd", 3));                    // too long once decoded
    CHECK(unescapeField("abc", 3) == std::string("abc"));
    CHECK(unescapeField("%41%62", 100) == std::string("Ab"));
}

TEST_CASE("ban events round-trip") {
    ClusterEvent e;
    e.type = ClusterEvent::Type::Ban;
    e.replica = "moat-7f9c-1234-abcdef";
    e.kind = SubjectKind::Identity;
    e.subject = "user with spaces %and% \xff bytes";
    e.remaining = milliseconds(299500);
    e.duration = milliseconds(300000);
    auto d = roundTrip(e);
    CHECK(d.type == ClusterEvent::Type::Ban);
    CHECK(d.replica == e.replica);
    CHECK(d.kind == SubjectKind::Identity);
    CHECK(d.subject == e.subject);
    CHECK(d.remaining == e.remaining);
    CHECK(d.duration == e.duration);

    e.kind = SubjectKind::Ip;
    e.subject = "2001:db8::1";
    CHECK(encodeEvent(e) == "moat1 ban moat-7f9c-1234-abcdef ip 2001:db8::1 299500 300000");
    CHECK(roundTrip(e).kind == SubjectKind::Ip);
}

TEST_CASE("kick events round-trip, with and without a certificate fingerprint") {
    ClusterEvent e;
    e.type = ClusterEvent::Type::Kick;
    e.replica = "r1";
    e.subject = "device1";
    e.reason = KickReason::Revoked;
    e.fingerprint = std::string(64, 'a');
    auto d = roundTrip(e);
    CHECK(d.type == ClusterEvent::Type::Kick);
    CHECK(d.subject == "device1");
    CHECK(d.reason == KickReason::Revoked);
    CHECK(d.fingerprint == e.fingerprint);

    e.fingerprint.clear();
    e.reason = KickReason::Banned;
    CHECK(encodeEvent(e) == "moat1 kick r1 device1 banned -");
    d = roundTrip(e);
    CHECK(d.fingerprint.empty());
    CHECK(d.reason == KickReason::Banned);
    e.reason = KickReason::NoRights;
    CHECK(roundTrip(e).reason == KickReason::NoRights);
}

TEST_CASE("conn and heartbeat events round-trip") {
    ClusterEvent e;
    e.type = ClusterEvent::Type::Conn;
    e.replica = "r2";
    e.subject = "10.1.2.3";
    e.connections = 4294967295u;
    e.accepted = 17;
    auto d = roundTrip(e);
    CHECK(d.type == ClusterEvent::Type::Conn);
    CHECK(d.subject == "10.1.2.3");
    CHECK(d.connections == 4294967295u);
    CHECK(d.accepted == 17);

    ClusterEvent hb;
    hb.type = ClusterEvent::Type::Heartbeat;
    hb.replica = "r3";
    CHECK(encodeEvent(hb) == "moat1 hb r3");
    CHECK(roundTrip(hb).replica == "r3");
}

TEST_CASE("malformed events are refused") {
    const char* bad[] = {
        "",
        "moat1",
        "moat1 hb",
        "moat2 hb r1",                                           // unknown version
        "moat1 hb r1 extra",                                     // field count
        "moat1 hb  r1",                                          // empty field (double space)
        "moat1 hb r1 ",                                          // trailing space
        " moat1 hb r1",                                          // leading space
        "moat1 zap r1",                                          // unknown type
        "moat1 ban r1 ip 10.0.0.1 100",                          // missing duration
        "moat1 ban r1 ipv6 10.0.0.1 100 100",                    // unknown kind
        "moat1 ban r1 ip 10.0.0.1 -1 100",                       // negative
        "moat1 ban r1 ip 10.0.0.1 100 1e3",                      // not an integer
        "moat1 ban r1 ip 10.0.0.1 100 99999999999999999999999",  // overflow
        "moat1 ban r1 ip 10.0.0.1 100 31708800001",              // over a year
        "moat1 ban r1 ip %zz 100 100",                           // bad escape
        "moat1 kick r1 device1 angry -",                         // unknown reason
        "moat1 kick r1 device1 revoked ABCDEF",                  // fingerprint not 64 lowercase hex
        ("moat1 kick r1 device1 revoked "
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),  // upper-case hex
        "moat1 conn r1 10.0.0.1 4294967296 0",                                 // count over 32 bits
        "moat1 conn r1 10.0.0.1 1",                                            // missing accepted
        "moat1 ban r1 ip 10.0.0.1 100 100 7",                                  // extra field
    };
    for (const char* line : bad) {
        INFO(line);
        CHECK_FALSE(decodeEvent(line));
    }
    // Oversized identity (decoded length counts).
    std::string longId(kMaxSubjectBytes + 1, 'x');
    CHECK_FALSE(decodeEvent("moat1 kick r1 " + longId + " banned -"));
    CHECK(decodeEvent("moat1 kick r1 " + std::string(kMaxSubjectBytes, 'x') + " banned -"));
}

TEST_CASE("key names and their parsers agree") {
    CHECK(banKey("moat:", SubjectKind::Ip, "10.0.0.1") == "moat:ban:ip:10.0.0.1");
    CHECK(banKey("moat:", SubjectKind::Identity, "a b") == "moat:ban:id:a%20b");
    CHECK(failKey("moat:", SubjectKind::Identity, "dev") == "moat:fail:id:dev");
    CHECK(connKey("moat:", "r 1") == "moat:conn:r%201");
    CHECK(eventsChannel("x/") == "x/events");

    auto k = parseBanKey("moat:", banKey("moat:", SubjectKind::Identity, "weird *?[] id"));
    REQUIRE(k);
    CHECK(k->kind == SubjectKind::Identity);
    CHECK(k->subject == "weird *?[] id");
    CHECK_FALSE(parseBanKey("moat:", "moat:ban:xx:1"));
    CHECK_FALSE(parseBanKey("moat:", "moat:ban:ip:"));
    CHECK_FALSE(parseBanKey("moat:", "other:ban:ip:1"));
    CHECK_FALSE(parseBanKey("moat:", "moat:ban:ip:%z1"));
    CHECK(parseConnKey("moat:", connKey("moat:", "r 1")) == std::string("r 1"));
    CHECK_FALSE(parseConnKey("moat:", "moat:conn:"));
    CHECK_FALSE(parseConnKey("moat:", "moat:ban:ip:1"));
}

TEST_CASE("scan patterns escape glob characters of the prefix") {
    CHECK(scanPattern("moat:", "ban:") == "moat:ban:*");
    CHECK(scanPattern("a*b?[c]\\:", "conn:") == "a\\*b\\?\\[c\\]\\\\:conn:*");
}

TEST_CASE("owner events and keys round-trip any client id and identity") {
    ClusterEvent e;
    e.type = ClusterEvent::Type::Owner;
    e.replica = "r1";
    e.subject = "dev 1/x%";
    e.owner = "CN=device 1";
    e.remaining = milliseconds(604800000);
    CHECK(encodeEvent(e) == "moat1 own r1 dev%201/x%25 CN=device%201 604800000");
    auto d = roundTrip(e);
    CHECK(d.type == ClusterEvent::Type::Owner);
    CHECK(d.subject == "dev 1/x%");
    CHECK(d.owner == "CN=device 1");
    CHECK(d.remaining == milliseconds(604800000));
    CHECK_FALSE(decodeEvent("moat1 own r1 cid  5"));
    CHECK_FALSE(decodeEvent("moat1 own r1 cid id"));
    CHECK(ownerKey("moat:", "a b") == "moat:owner:a%20b");
    CHECK(parseOwnerKey("moat:", "moat:owner:a%20b") == std::optional<std::string>("a b"));
    CHECK_FALSE(parseOwnerKey("moat:", "moat:owner:"));
    CHECK_FALSE(parseOwnerKey("moat:", "moat:ban:ip:1.2.3.4"));
}
