// Where the signature travels: v5 user properties, v3 payload trailer. Adversarial inputs:
// duplicates, bad base64, oversize signatures, short payloads.

#include <catch2/catch.hpp>

#include "gateway/integrity/SignedPublish.h"
#include "gateway/mqtt/Properties.h"
#include "policy/Base64.h"

using namespace moat::integrity;
namespace mqtt = moat::mqtt;

namespace {

std::vector<uint8_t> props(const std::vector<mqtt::Property>& list) {
    std::vector<uint8_t> out;
    REQUIRE(mqtt::encodeProperties(list, out));
    // Drop the length prefix: extractV5 takes the block as PublishView holds it.
    size_t skip = 1;
    while (out[skip - 1] & 0x80) ++skip;
    return {out.begin() + long(skip), out.end()};
}

std::string b64(const std::vector<uint8_t>& v) {
    return moat::policy::base64Encode(v.data(), v.size());
}

}  // namespace

TEST_CASE("parseDecimal is strict") {
    CHECK(parseDecimal("0") == 0u);
    CHECK(parseDecimal("1700000000") == 1700000000u);
    CHECK(parseDecimal("18446744073709551615") == UINT64_MAX);
    CHECK_FALSE(parseDecimal("18446744073709551616"));
    CHECK_FALSE(parseDecimal(""));
    CHECK_FALSE(parseDecimal("-1"));
    CHECK_FALSE(parseDecimal("+1"));
    CHECK_FALSE(parseDecimal(" 1"));
    CHECK_FALSE(parseDecimal("1 "));
    CHECK_FALSE(parseDecimal("0x10"));
    CHECK_FALSE(parseDecimal("1e9"));
    CHECK_FALSE(parseDecimal("000000000000000000001"));  // 21 digits
}

TEST_CASE("base64DecodeInto: standard alphabet, canonical, bounded") {
    std::array<uint8_t, 64> buf{};
    CHECK(base64DecodeInto("", buf) == 0u);
    CHECK(base64DecodeInto("Zg==", buf) == 1u);
    CHECK(buf[0] == 'f');
    CHECK(base64DecodeInto("Zg", buf) == 1u);  // padding optional
    CHECK(base64DecodeInto("Zm9v", buf) == 3u);
    CHECK(base64DecodeInto("Zm9vYg==", buf) == 4u);
    CHECK_FALSE(base64DecodeInto("Zh==", buf));  // non-zero tail bits
    CHECK_FALSE(base64DecodeInto("Z", buf));     // impossible length
    CHECK_FALSE(base64DecodeInto("Zg=", buf));   // partial padding
    CHECK_FALSE(base64DecodeInto("Zg===", buf));
    CHECK_FALSE(base64DecodeInto("=Zg=", buf));
    CHECK_FALSE(base64DecodeInto("Zm9v\n", buf));  // no whitespace
    CHECK_FALSE(base64DecodeInto("Zm-_", buf));    // not base64url
    std::vector<uint8_t> big(65, 1);
    CHECK_FALSE(base64DecodeInto(b64(big), buf));  // larger than any signature
    std::vector<uint8_t> max(64, 0xFF);
    CHECK(base64DecodeInto(b64(max), buf) == 64u);
    CHECK(std::equal(max.begin(), max.end(), buf.begin()));
}

TEST_CASE("extractV5: moat-sig / moat-ts user properties") {
    std::array<uint8_t, kEd25519Size> buf{};
    SignatureFields f;
    const std::vector<uint8_t> sig(32, 0xAB);

    auto p = props({mqtt::Property::user("a", "b"), mqtt::Property::user("moat-sig", b64(sig)),
                    mqtt::Property::integer(mqtt::prop::MessageExpiryInterval, 60)});
    REQUIRE(extractV5(p, "payload", buf, f) == Failure::None);
    CHECK(std::vector<uint8_t>(f.signature.begin(), f.signature.end()) == sig);
    CHECK_FALSE(f.timestamp);
    CHECK(f.payload == "payload");
    CHECK(f.trailer == 0);

    p = props({mqtt::Property::user("moat-ts", "1700000000"),
               mqtt::Property::user("moat-sig", b64(sig))});
    REQUIRE(extractV5(p, "x", buf, f) == Failure::None);
    CHECK(f.timestamp == 1700000000u);

    CHECK(extractV5({}, "x", buf, f) == Failure::MissingSignature);
    CHECK(extractV5(props({mqtt::Property::user("moat-ts", "1")}), "x", buf, f) ==
          Failure::MissingSignature);
    // Names are case-sensitive: MQTT user properties are opaque strings.
    CHECK(extractV5(props({mqtt::Property::user("Moat-Sig", b64(sig))}), "x", buf, f) ==
          Failure::MissingSignature);
    CHECK(extractV5(props({mqtt::Property::user("moat-sig", b64(sig)),
                           mqtt::Property::user("moat-sig", b64(sig))}),
                    "x", buf, f) == Failure::BadSignature);
    CHECK(extractV5(props({mqtt::Property::user("moat-sig", "!!!")}), "x", buf, f) ==
          Failure::BadSignature);
    CHECK(extractV5(props({mqtt::Property::user("moat-sig", b64(std::vector<uint8_t>(65, 1)))}),
                    "x", buf, f) == Failure::BadSignature);
    CHECK(extractV5(props({mqtt::Property::user("moat-sig", b64(sig)),
                           mqtt::Property::user("moat-ts", "soon")}),
                    "x", buf, f) == Failure::BadTimestamp);
    CHECK(extractV5(
              props({mqtt::Property::user("moat-sig", b64(sig)),
                     mqtt::Property::user("moat-ts", "1"), mqtt::Property::user("moat-ts", "2")}),
              "x", buf, f) == Failure::BadTimestamp);
}

TEST_CASE("extractV3: [ts] + signature at the end of the payload") {
    SignatureFields f;
    std::string sig(32, 'S');
    // SignatureFields views the payload: keep each message alive while it is checked.
    const std::string plain = "data" + sig;
    REQUIRE(extractV3(plain, Algorithm::HmacSha256, false, f) == Failure::None);
    CHECK(f.payload == "data");
    CHECK(f.trailer == 32);
    CHECK(std::string(f.signature.begin(), f.signature.end()) == sig);
    CHECK_FALSE(f.timestamp);

    const std::string ts("\x00\x00\x00\x00\x65\x53\xf1\x00", 8);  // 1700000000
    const std::string stamped = "data" + ts + sig;
    REQUIRE(extractV3(stamped, Algorithm::HmacSha256, true, f) == Failure::None);
    CHECK(f.payload == "data");
    CHECK(f.trailer == 40);
    CHECK(f.timestamp == 1700000000u);

    std::string esig(64, 'E');
    REQUIRE(extractV3(esig, Algorithm::Ed25519, false, f) == Failure::None);  // empty message
    CHECK(f.payload.empty());
    CHECK(f.signature.size() == 64);

    CHECK(extractV3("", Algorithm::HmacSha256, false, f) == Failure::MissingSignature);
    CHECK(extractV3(std::string(31, 'x'), Algorithm::HmacSha256, false, f) ==
          Failure::MissingSignature);
    CHECK(extractV3(std::string(39, 'x'), Algorithm::HmacSha256, true, f) ==
          Failure::MissingSignature);
    CHECK(extractV3(std::string(63, 'x'), Algorithm::Ed25519, false, f) ==
          Failure::MissingSignature);
    CHECK(f.trailer == 0);
}

TEST_CASE("failure reasons are the audit log's words") {
    CHECK(std::string(failureReason(Failure::MissingSignature)) == "missing signature");
    CHECK(std::string(failureReason(Failure::BadSignature)) == "bad signature");
    CHECK(std::string(failureReason(Failure::StaleTimestamp)) == "stale timestamp");
    CHECK(std::string(failureReason(Failure::NoKey)) == "no key");
}
