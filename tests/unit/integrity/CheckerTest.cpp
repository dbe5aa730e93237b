// Rules, per-identity keys and freshness: KeyStore + Checker.

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "gateway/integrity/KeyStore.h"
#include "gateway/integrity/PublishRewrite.h"
#include "policy/Base64.h"

using namespace moat::integrity;

namespace {

struct KeyDir {
    std::string dir = "/tmp/moat_unit_keys_" + std::to_string(::getpid());
    KeyDir() { ::mkdir(dir.c_str(), 0700); }
    std::string write(const std::string& name, const std::string& content) {
        std::string p = dir + "/" + name;
        std::ofstream(p, std::ios::binary) << content;
        return p;
    }
};

RuleSpec rule(std::vector<std::string> topics, std::string keyPath,
              std::optional<std::chrono::milliseconds> maxAge = std::nullopt,
              Algorithm alg = Algorithm::HmacSha256) {
    RuleSpec r;
    r.topics = std::move(topics);
    r.keyPath = std::move(keyPath);
    r.maxAge = maxAge;
    r.algorithm = alg;
    return r;
}

std::string trailer(const Signer& s, const std::string& topic, const std::string& payload,
                    std::optional<uint64_t> ts) {
    std::string out = payload;
    if (ts) {
        uint8_t b[8];
        putTimestamp(*ts, b);
        out.append(reinterpret_cast<char*>(b), 8);
    }
    auto sig = s.sign(topic, payload, ts);
    out.append(sig.begin(), sig.end());
    return out;
}

}  // namespace

TEST_CASE("KeyStore: fixed keys at build, %u keys per identity, cached, errors reported") {
    KeyDir kd;
    kd.write("d1.key", "secret-d1\n");
    kd.write("d2.key", "secret-d2\n");
    const std::string shared = kd.write("shared.key", "shared\n");
    std::vector<std::string> errors;
    auto ks = KeyStore::build(
        {rule({"devices/+/firmware/#"}, kd.dir + "/%u.key"), rule({"fleet/#"}, shared)}, errors);
    REQUIRE(errors.empty());

    std::vector<std::string> problems;
    auto c1 = ks->checkerFor("d1", "c1", problems);
    CHECK(problems.empty());
    CHECK(ks->cachedKeys() == 1);
    auto again = ks->checkerFor("d1", "c1-bis", problems);
    CHECK(ks->cachedKeys() == 1);  // a reconnect reuses the key

    const Signer s1 = Signer::hmacSecret("secret-d1");
    const Signer s2 = Signer::hmacSecret("secret-d2");
    auto ok = c1->check("devices/d1/firmware/v2", trailer(s1, "devices/d1/firmware/v2", "img", {}),
                        {}, false);
    CHECK(ok.matched());
    CHECK(ok.failure == Failure::None);
    CHECK(ok.trailer == 32);
    // d1 signing with d2's key: wrong key.
    auto wrong = c1->check("devices/d1/firmware/v2",
                           trailer(s2, "devices/d1/firmware/v2", "img", {}), {}, false);
    CHECK(wrong.failure == Failure::BadSignature);
    // Outside every rule: nothing to do, nothing stripped.
    auto free = c1->check("devices/d1/telemetry", "plain", {}, false);
    CHECK_FALSE(free.matched());
    CHECK(free.trailer == 0);
    // The fixed-key rule.
    const Signer ss = Signer::hmacSecret("shared");
    CHECK(c1->check("fleet/x", trailer(ss, "fleet/x", "p", {}), {}, false).failure ==
          Failure::None);

    SECTION("an identity without a key file: 'no key' for its signed topics only") {
        auto c3 = ks->checkerFor("d3", "c3", problems);
        REQUIRE(problems.size() == 1);
        auto o = c3->check("devices/d3/firmware", trailer(s1, "devices/d3/firmware", "img", {}), {},
                           false);
        CHECK(o.failure == Failure::NoKey);
        CHECK_FALSE(c3->check("devices/d3/telemetry", "x", {}, false).matched());
        CHECK(ks->cachedKeys() == 1);  // failures are not cached
    }
    SECTION("identities that could escape the key folder never name a file") {
        const std::vector<std::string> escapes = {
            "../d1", "..", ".", "", "a/b", std::string("d1\0x", 4), "a\\b"};
        for (const std::string& id : escapes) {
            problems.clear();
            auto c = ks->checkerFor(id, "c", problems);
            CHECK(problems.size() == 1);
            CHECK(KeyStore::keyPathFor(ks->rules()[0], id).empty());
        }
    }
}

TEST_CASE("KeyStore: a bad fixed key fails the build (start / reload)") {
    KeyDir kd;
    std::vector<std::string> errors;
    KeyStore::build({rule({"a/#"}, kd.dir + "/missing.key")}, errors);
    CHECK(errors.size() == 1);
    errors.clear();
    KeyStore::build(
        {rule({"a/#"}, kd.write("bad.pem", "garbage"), std::nullopt, Algorithm::Ed25519)}, errors);
    CHECK(errors.size() == 1);
}

TEST_CASE("Checker: max_age, symmetric window, missing timestamps") {
    KeyDir kd;
    std::vector<std::string> errors, problems;
    auto ks =
        KeyStore::build({rule({"sig/#"}, kd.write("k", "k"), std::chrono::minutes(5))}, errors);
    REQUIRE(errors.empty());
    int64_t now = 1700000000;
    auto c = ks->checkerFor("id", "cid", problems, [&now] { return now; });
    const Signer s = Signer::hmacSecret("k");
    auto at = [&](int64_t ts) {
        return c->check("sig/a", trailer(s, "sig/a", "p", uint64_t(ts)), {}, false).failure;
    };
    CHECK(at(now) == Failure::None);
    CHECK(at(now - 300) == Failure::None);
    CHECK(at(now - 301) == Failure::StaleTimestamp);
    CHECK(at(now + 300) == Failure::None);
    CHECK(at(now + 301) == Failure::StaleTimestamp);
    CHECK(at(0) == Failure::StaleTimestamp);
    // v3 with max_age: the trailer must hold a timestamp; without, the last 8 bytes of the
    // message are read as one and the signature does not verify.
    CHECK(c->check("sig/a", trailer(s, "sig/a", "payload!", std::nullopt), {}, false).failure !=
          Failure::None);
    // A replay: valid when sent, refused as a replay within max_age, stale ten minutes later.
    const std::string msg = trailer(s, "sig/a", "p2", uint64_t(now));
    CHECK(c->check("sig/a", msg, {}, false).failure == Failure::None);
    CHECK(c->check("sig/a", msg, {}, false).failure == Failure::Replayed);
    now += 600;
    CHECK(c->check("sig/a", msg, {}, false).failure == Failure::StaleTimestamp);
}

TEST_CASE("Checker: within max_age a signature is accepted once, across connections and reloads") {
    // Finding 18.8: max_age alone let a captured message be sent again while it was fresh.
    KeyDir kd;
    std::vector<std::string> errors, problems;
    auto replay = std::make_shared<ReplayCache>();
    const std::string key = kd.write("kr", "k");
    auto ks = KeyStore::build(
        {rule({"sig/#"}, key, std::chrono::minutes(5)), rule({"plain/#"}, key)}, errors, replay);
    REQUIRE(errors.empty());
    int64_t now = 1700000000;
    auto c = ks->checkerFor("id", "cid", problems, [&now] { return now; });
    const Signer s = Signer::hmacSecret("k");
    const std::string msg = trailer(s, "sig/a", "open", uint64_t(now));
    CHECK(c->check("sig/a", msg, {}, false).failure == Failure::None);
    CHECK(c->check("sig/a", msg, {}, false).failure == Failure::Replayed);
    // Another connection, another identity sharing the key, a reloaded KeyStore: still a replay.
    auto other = ks->checkerFor("id2", "cid2", problems, [&now] { return now; });
    CHECK(other->check("sig/a", msg, {}, false).failure == Failure::Replayed);
    auto reloaded =
        KeyStore::build({rule({"sig/#"}, key, std::chrono::minutes(5))}, errors, replay);
    auto after = reloaded->checkerFor("id", "cid", problems, [&now] { return now; });
    CHECK(after->check("sig/a", msg, {}, false).failure == Failure::Replayed);
    // A refused signature is not remembered: the genuine one still goes through once.
    const std::string next = trailer(s, "sig/a", "close", uint64_t(now + 1));
    std::string tampered = next;
    tampered[0] ^= 1;
    CHECK(c->check("sig/a", tampered, {}, false).failure == Failure::BadSignature);
    CHECK(c->check("sig/a", next, {}, false).failure == Failure::None);
    // Wills are checked without being remembered (a reconnect repeats its will).
    const std::string will = trailer(s, "sig/w", "bye", uint64_t(now));
    CHECK(checkWill(*c, "sig/w", will, {}, false).failure == Failure::None);
    CHECK(checkWill(*c, "sig/w", will, {}, false).failure == Failure::None);
    // Without max_age there is no window to bound the cache: nothing is remembered.
    const std::string untimed = trailer(s, "plain/a", "x", std::nullopt);
    CHECK(c->check("plain/a", untimed, {}, false).failure == Failure::None);
    CHECK(c->check("plain/a", untimed, {}, false).failure == Failure::None);
    CHECK(replay->size() == 2);
    // Entries leave when their timestamp is stale.
    now += 301;
    CHECK(c->check("sig/a", trailer(s, "sig/a", "later", uint64_t(now)), {}, false).failure ==
          Failure::None);
    CHECK(replay->size() == 2);  // "close" (ts now+1) is kept, "open" is gone
}

TEST_CASE("Checker: v5 properties, missing timestamp with max_age") {
    KeyDir kd;
    std::vector<std::string> errors, problems;
    auto ks =
        KeyStore::build({rule({"sig/#"}, kd.write("k5", "k"), std::chrono::minutes(1))}, errors);
    int64_t now = 1700000000;
    auto c = ks->checkerFor("id", "cid", problems, [&now] { return now; });
    const Signer s = Signer::hmacSecret("k");
    auto sig = s.sign("sig/a", "p", uint64_t(now));
    std::string b64 = moat::policy::base64Encode(sig.data(), sig.size());
    auto block = [](std::vector<std::pair<std::string, std::string>> users) {
        std::vector<uint8_t> out;
        for (auto& [k, v] : users) {
            out.push_back(0x26);
            out.push_back(uint8_t(k.size() >> 8));
            out.push_back(uint8_t(k.size()));
            out.insert(out.end(), k.begin(), k.end());
            out.push_back(uint8_t(v.size() >> 8));
            out.push_back(uint8_t(v.size()));
            out.insert(out.end(), v.begin(), v.end());
        }
        return out;
    };
    auto good = block({{"moat-sig", b64}, {"moat-ts", std::to_string(now)}});
    auto o = c->check("sig/a", "p", good, true);
    CHECK(o.failure == Failure::None);
    CHECK(o.trailer == 0);  // v5: the payload is never touched
    CHECK(c->check("sig/a", "p", block({{"moat-sig", b64}}), true).failure ==
          Failure::MissingTimestamp);
    CHECK(c->check("sig/a", "p!", good, true).failure == Failure::BadSignature);
    CHECK(c->check("sig/b", "p", good, true).failure == Failure::BadSignature);  // tampered topic
    CHECK(c->check("sig/a", "p", {}, true).failure == Failure::MissingSignature);
}

TEST_CASE("Checker: placeholder filters are expanded per client; first rule wins") {
    KeyDir kd;
    std::vector<std::string> errors, problems;
    auto ks = KeyStore::build(
        {rule({"devices/%u/fw/#"}, kd.write("ka", "a")), rule({"devices/#"}, kd.write("kb", "b"))},
        errors);
    REQUIRE(errors.empty());
    auto c = ks->checkerFor("d1", "c", problems);
    CHECK(c->check("devices/d1/fw/x", "", {}, false).rule == 0);
    CHECK(c->check("devices/d2/fw/x", "", {}, false).rule == 1);
    // An identity unusable in a filter widens the rule rather than escaping it.
    auto evil = ks->checkerFor("a/b", "c", problems);
    CHECK(evil->check("devices/zz/fw/x", "", {}, false).rule == 0);
}

TEST_CASE("checkWill: a will under a rule needs a signature (v5 will properties / v3 trailer)") {
    namespace mqtt = moat::mqtt;
    KeyDir kd;
    std::vector<std::string> errors, problems;
    auto ks =
        KeyStore::build({rule({"sig/#"}, kd.write("kw", "k"), std::chrono::minutes(1))}, errors);
    REQUIRE(errors.empty());
    int64_t now = 1700000000;
    auto c = ks->checkerFor("id", "cid", problems, [&now] { return now; });
    const Signer s = Signer::hmacSecret("k");
    auto sig = s.sign("sig/will", "bye", uint64_t(now));
    const std::string b64 = moat::policy::base64Encode(sig.data(), sig.size());
    // Will Delay Interval is a will-only property: it must not hide the signature after it.
    std::vector<mqtt::Property> props = {mqtt::Property::integer(mqtt::prop::WillDelayInterval, 5),
                                         mqtt::Property::user("moat-sig", b64),
                                         mqtt::Property::user("moat-ts", std::to_string(now))};
    CHECK(checkWill(*c, "sig/will", "bye", props, true).failure == Failure::None);
    CHECK(checkWill(*c, "sig/will", "bye!", props, true).failure == Failure::BadSignature);
    CHECK(checkWill(*c, "sig/will", "bye", {}, true).failure == Failure::MissingSignature);
    CHECK(!checkWill(*c, "other/will", "bye", {}, true).matched());
    const std::string v3 = trailer(s, "sig/will", "bye", uint64_t(now));
    auto o = checkWill(*c, "sig/will", v3, {}, false);
    CHECK(o.failure == Failure::None);
    CHECK(o.trailer == v3.size() - 3);
    now += 120;
    CHECK(checkWill(*c, "sig/will", v3, {}, false).failure == Failure::StaleTimestamp);
}
