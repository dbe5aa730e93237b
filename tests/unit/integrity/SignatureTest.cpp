// Known-answer tests: RFC 4231 (HMAC-SHA256) and RFC 8032 §7.1 (Ed25519), then the signed-bytes
// layout of CONTRACT.md §3 on top of them.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "gateway/integrity/Signature.h"
#include "tests/unit/integrity/TestUtil.h"

using namespace moat::integrity;
using moat::integrity::test::hex;
using moat::integrity::test::str;

namespace {

struct HmacVector {
    std::vector<uint8_t> key;
    std::vector<uint8_t> data;
    const char* mac;
};

std::vector<uint8_t> bytes(std::string_view s) {
    return {s.begin(), s.end()};
}

std::string tempFile(const std::string& name, const std::string& content) {
    std::string path = "/tmp/moat_unit_integrity_" + std::to_string(::getpid()) + "_" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

}  // namespace

TEST_CASE("HMAC-SHA256: RFC 4231 test cases 1-4, 6, 7") {
    const std::vector<HmacVector> vectors = {
        {std::vector<uint8_t>(20, 0x0b), bytes("Hi There"),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {bytes("Jefe"), bytes("what do ya want for nothing?"),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {std::vector<uint8_t>(20, 0xaa), std::vector<uint8_t>(50, 0xdd),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), std::vector<uint8_t>(50, 0xcd),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        // Case 5 tests a truncated output, which the contract does not use.
        {std::vector<uint8_t>(131, 0xaa),
         bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {std::vector<uint8_t>(131, 0xaa),
         bytes("This is a test using a larger than block-size key and a larger than block-size "
               "data. The key needs to be hashed before being used by the HMAC algorithm."),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    Verifier verifier;  // one verifier for all: its reused MAC context must not leak state
    for (const auto& v : vectors) {
        auto key = Key::hmacSecret(str(v.key));
        const auto expected = hex(v.mac);
        CHECK(Signer::hmacSecret(str(v.key)).signMessage(v.data) == expected);
        CHECK(verifier.verifyMessage(*key, v.data, expected));
        for (size_t bit : {size_t(0), size_t(255)}) {
            auto wrong = expected;
            wrong[bit / 8] ^= uint8_t(1u << (bit % 8));
            CHECK_FALSE(verifier.verifyMessage(*key, v.data, wrong));
        }
        auto truncated = expected;
        truncated.pop_back();
        CHECK_FALSE(verifier.verifyMessage(*key, v.data, truncated));
    }
}

TEST_CASE("Ed25519: RFC 8032 section 7.1 tests 1-3") {
    struct Vector {
        const char* secret;
        const char* pub;
        const char* msg;
        const char* sig;
    };
    const Vector vectors[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
         "701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f36"
         "13d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f7"
         "60984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    };
    Verifier verifier;
    for (const auto& v : vectors) {
        auto key = Key::ed25519PublicRaw(hex(v.pub));
        REQUIRE(key);
        auto signer = Signer::ed25519PrivateRaw(hex(v.secret));
        REQUIRE(signer);
        const auto msg = hex(v.msg);
        const auto sig = hex(v.sig);
        CHECK(signer->signMessage(msg) == sig);  // Ed25519 is deterministic
        CHECK(verifier.verifyMessage(*key, msg, sig));
        auto wrong = sig;
        wrong[10] ^= 0x01;
        CHECK_FALSE(verifier.verifyMessage(*key, msg, wrong));
        auto other = msg;
        other.push_back(0);
        CHECK_FALSE(verifier.verifyMessage(*key, other, sig));
    }
}

TEST_CASE("signed bytes: topic, 0x00, payload / topic, 0x01, 8-byte big-endian ts, payload") {
    std::vector<uint8_t> out;
    appendSignedBytes("a/b", "hi", std::nullopt, out);
    CHECK(out == std::vector<uint8_t>{'a', '/', 'b', 0, 'h', 'i'});
    out.clear();
    appendSignedBytes("t", "", 0x0102030405060708ull, out);
    CHECK(out == std::vector<uint8_t>{'t', 1, 1, 2, 3, 4, 5, 6, 7, 8});
    out.clear();
    appendSignedBytes("t", "p", 0x0102030405060708ull, out);
    CHECK(out == std::vector<uint8_t>{'t', 1, 1, 2, 3, 4, 5, 6, 7, 8, 'p'});

    // The streamed HMAC equals the HMAC of the concatenation.
    const Signer s = Signer::hmacSecret("k");
    out.clear();
    appendSignedBytes("dev/1/fw", std::string("\0x\0", 3), 1700000000, out);
    CHECK(s.sign("dev/1/fw", std::string("\0x\0", 3), 1700000000) == s.signMessage(out));
    // python3: hmac.new(b'secret', b'a/b\0hello', 'sha256')
    CHECK(Signer::hmacSecret("secret").sign("a/b", "hello", std::nullopt) ==
          hex("3b46771c209d78c2914433bc920bbea44a8d582a234081114872a7356356e668"));
    // python3: hmac.new(b'secret', b'a/b\1' + (1700000000).to_bytes(8, 'big') + b'hello',
    //                   'sha256')
    CHECK(Signer::hmacSecret("secret").sign("a/b", "hello", 1700000000) ==
          hex("8b7478697076f0574d6d510f957d8c5fd319faecbdd3eb8280725e98f53b9fa7"));
}

TEST_CASE("signed bytes are unambiguous: a timestamped signature never verifies as a payload") {
    // Finding 18.8: with `topic 0 payload 0 ts`, the signature of (payload, ts) was also the
    // signature of payload' = payload 0 ts without a timestamp; on a rule without max_age that
    // replayed a signed message as a different payload.
    Verifier verifier;
    auto hkey = Key::hmacSecret("s3cret");
    const Signer hs = Signer::hmacSecret("s3cret");
    auto ekey = Key::ed25519PublicRaw(
        hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
    auto es = Signer::ed25519PrivateRaw(
        hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
    REQUIRE(es);
    const Signer* esp = &*es;
    const uint64_t ts = 1700000000;
    uint8_t tsBytes[kTimestampSize];
    putTimestamp(ts, tsBytes);
    const std::string tsStr(reinterpret_cast<const char*>(tsBytes), kTimestampSize);
    const std::string zero(1, '\0');
    for (auto [key, signer] : {std::pair{hkey.get(), &hs}, std::pair{ekey.get(), esp}}) {
        auto sig = signer->sign("fw/x", "payload", ts);
        REQUIRE(verifier.verify(*key, "fw/x", "payload", ts, sig));
        // The old attack: payload ‖ 0 ‖ ts, no timestamp.
        CHECK_FALSE(verifier.verify(*key, "fw/x", "payload" + zero + tsStr, std::nullopt, sig));
        // And every other way to move the timestamp into the payload or out of it.
        CHECK_FALSE(verifier.verify(*key, "fw/x", "\x01" + tsStr + "payload", std::nullopt, sig));
        CHECK_FALSE(verifier.verify(*key, "fw/x", tsStr + "payload", std::nullopt, sig));
        auto plain = signer->sign("fw/x", tsStr + "payload", std::nullopt);
        CHECK_FALSE(verifier.verify(*key, "fw/x", "payload", ts, plain));
        // An untimed signature never verifies with a timestamp taken from the payload.
        auto untimed = signer->sign("fw/x", "payload" + zero + tsStr, std::nullopt);
        CHECK_FALSE(verifier.verify(*key, "fw/x", "payload", ts, untimed));
    }
}

TEST_CASE("sign / verify round trip, both algorithms, with and without timestamp") {
    Verifier verifier;
    auto hkey = Key::hmacSecret("s3cret");
    const Signer hs = Signer::hmacSecret("s3cret");
    auto seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    auto ekey = Key::ed25519PublicRaw(
        hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
    auto es = Signer::ed25519PrivateRaw(seed);
    REQUIRE(es);
    const Signer* esp = &*es;
    for (auto [key, signer] : {std::pair{hkey.get(), &hs}, std::pair{ekey.get(), esp}}) {
        for (std::optional<uint64_t> ts :
             {std::optional<uint64_t>{}, std::optional<uint64_t>{1700000000}}) {
            auto sig = signer->sign("devices/d1/firmware", "payload", ts);
            REQUIRE(sig.size() == signatureSize(key->algorithm()));
            CHECK(verifier.verify(*key, "devices/d1/firmware", "payload", ts, sig));
            CHECK_FALSE(verifier.verify(*key, "devices/d2/firmware", "payload", ts, sig));
            CHECK_FALSE(verifier.verify(*key, "devices/d1/firmware", "payloaD", ts, sig));
            CHECK_FALSE(verifier.verify(
                *key, "devices/d1/firmware", "payload",
                ts ? std::optional<uint64_t>{*ts + 1} : std::optional<uint64_t>{0}, sig));
            // The separator is part of the signed bytes: moving bytes across it breaks it.
            CHECK_FALSE(verifier.verify(*key, "devices/d1/firmwarep", "ayload", ts, sig));
        }
    }
    // An HMAC never verifies under an Ed25519 key and vice versa (lengths differ anyway).
    auto hsig = hs.sign("t", "p", std::nullopt);
    CHECK_FALSE(verifier.verify(*ekey, "t", "p", std::nullopt, hsig));
}

TEST_CASE("key files") {
    std::string err;
    SECTION("HMAC: raw secret, one trailing newline ignored") {
        auto k = Key::load(Algorithm::HmacSha256, tempFile("h1", "secret\n"), err);
        REQUIRE(k);
        CHECK(k->secret() == "secret");
        k = Key::load(Algorithm::HmacSha256, tempFile("h2", "secret\r\n"), err);
        REQUIRE(k);
        CHECK(k->secret() == "secret");
        k = Key::load(Algorithm::HmacSha256, tempFile("h3", std::string("bin\0ary", 7)), err);
        REQUIRE(k);
        CHECK(k->secret().size() == 7);
        CHECK_FALSE(Key::load(Algorithm::HmacSha256, tempFile("h4", "\n"), err));
        CHECK(err.find("empty") != std::string::npos);
        CHECK_FALSE(Key::load(Algorithm::HmacSha256, "/nonexistent/moat.key", err));
        CHECK(err.find("/nonexistent/moat.key") != std::string::npos);
        CHECK_FALSE(Key::load(Algorithm::HmacSha256, tempFile("h5", std::string(65537, 'x')), err));
    }
    SECTION("Ed25519: PEM public key only") {
        // openssl pkey -pubout of RFC 8032 test 1's key
        const std::string pem =
            "-----BEGIN PUBLIC KEY-----\n"
            "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
            "-----END PUBLIC KEY-----\n";
        auto k = Key::load(Algorithm::Ed25519, tempFile("e1", pem), err);
        REQUIRE(k);
        Verifier v;
        CHECK(v.verifyMessage(
            *k, {},
            hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")));
        CHECK_FALSE(Key::load(Algorithm::Ed25519, tempFile("e2", "not a pem"), err));
        // A private key is not accepted where the gateway expects the public one.
        const std::string priv =
            "-----BEGIN PRIVATE KEY-----\n"
            "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
            "-----END PRIVATE KEY-----\n";
        CHECK_FALSE(Key::load(Algorithm::Ed25519, tempFile("e3", priv), err));
        auto signer = Signer::load(Algorithm::Ed25519, tempFile("e4", priv), err);
        REQUIRE(signer);
        CHECK(
            signer->signMessage({}) ==
            hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
                "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"));
        CHECK_FALSE(Signer::load(Algorithm::Ed25519, tempFile("e5", pem), err));
        CHECK(err.find("private") != std::string::npos);
    }
}
