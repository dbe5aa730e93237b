// Re-encoding a PUBLISH: v3 trailer stripped, moat-identity replaced, everything else intact.

#include <catch2/catch.hpp>

#include "gateway/integrity/PublishRewrite.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"

using namespace moat::integrity;
namespace mqtt = moat::mqtt;

namespace {

struct Decoded {
    std::vector<uint8_t> bytes;
    mqtt::Frame frame;
    mqtt::PublishView view;
};

Decoded decode(std::vector<uint8_t> bytes, mqtt::ProtocolVersion v) {
    Decoded d;
    d.bytes = std::move(bytes);
    REQUIRE(mqtt::parseFrame(d.bytes.data(), d.bytes.size(), d.frame) == mqtt::FrameStatus::Ok);
    REQUIRE(d.frame.totalSize() == d.bytes.size());
    REQUIRE(mqtt::decodePublish(d.frame, d.bytes.data() + d.frame.headerSize, v, d.view) ==
            mqtt::reason::Success);
    return d;
}

}  // namespace

TEST_CASE("v3: the trailer is stripped, flags / topic / packet id kept") {
    mqtt::PublishPacket p;
    p.topic = "devices/d1/firmware";
    p.payload = "image" + std::string(32, 'S');
    p.qos = 2;
    p.retain = true;
    p.dup = true;
    p.packetId = 77;
    auto in =
        decode(mqtt::encodePublish(p, mqtt::ProtocolVersion::V311), mqtt::ProtocolVersion::V311);
    std::vector<uint8_t> out;
    REQUIRE(rewritePublish(in.frame, in.view, false, in.view.payload.substr(0, 5), {}, out));
    auto expected = p;
    expected.payload = "image";
    CHECK(out == mqtt::encodePublish(expected, mqtt::ProtocolVersion::V311));
}

TEST_CASE("v5: moat-identity stamped, client copies removed, other properties kept in order") {
    const auto stamp = encodeIdentityProperty("dev-1");
    mqtt::PublishPacket p;
    p.topic = "";  // alias-only PUBLISH: the topic stays empty, the alias stays
    p.payload = "x";
    p.qos = 1;
    p.packetId = 5;
    p.properties = {mqtt::Property::user("moat-identity", "admin"),
                    mqtt::Property::integer(mqtt::prop::TopicAlias, 3),
                    mqtt::Property::user("k", "v"),
                    mqtt::Property::user("moat-identity", "root"),
                    mqtt::Property::string(mqtt::prop::ContentType, "text/plain"),
                    mqtt::Property::user("moat-sig", "c2ln")};
    auto in = decode(mqtt::encodePublish(p, mqtt::ProtocolVersion::V5), mqtt::ProtocolVersion::V5);
    std::vector<uint8_t> out;
    REQUIRE(rewritePublish(in.frame, in.view, true, in.view.payload, stamp, out));
    auto expected = p;
    expected.properties = {
        mqtt::Property::integer(mqtt::prop::TopicAlias, 3), mqtt::Property::user("k", "v"),
        mqtt::Property::string(mqtt::prop::ContentType, "text/plain"),
        mqtt::Property::user("moat-sig", "c2ln"), mqtt::Property::user("moat-identity", "dev-1")};
    CHECK(out == mqtt::encodePublish(expected, mqtt::ProtocolVersion::V5));
    auto again = decode(out, mqtt::ProtocolVersion::V5);
    CHECK(again.view.topicAlias == 3);
    CHECK(hasUserProperty(again.view.properties, "moat-identity"));
}

TEST_CASE("v5 without properties gets exactly the stamp; remaining length grows past 127") {
    const auto stamp = encodeIdentityProperty(std::string(200, 'i'));
    mqtt::PublishPacket p;
    p.topic = "t";
    p.payload = std::string(100, 'p');
    auto in = decode(mqtt::encodePublish(p, mqtt::ProtocolVersion::V5), mqtt::ProtocolVersion::V5);
    std::vector<uint8_t> out;
    REQUIRE(rewritePublish(in.frame, in.view, true, in.view.payload, stamp, out));
    auto expected = p;
    expected.properties = {mqtt::Property::user("moat-identity", std::string(200, 'i'))};
    CHECK(out == mqtt::encodePublish(expected, mqtt::ProtocolVersion::V5));
}

TEST_CASE("encodeIdentityProperty") {
    auto b = encodeIdentityProperty("ab");
    CHECK(b == std::vector<uint8_t>{0x26, 0,   13,  'm', 'o', 'a', 't', '-', 'i', 'd',
                                    'e',  'n', 't', 'i', 't', 'y', 0,   2,   'a', 'b'});
    CHECK(encodeIdentityProperty(std::string(70000, 'x')).empty());
}

TEST_CASE("stampWillProperties: client moat-identity dropped, the gateway's appended") {
    std::vector<mqtt::Property> props = {mqtt::Property::user("moat-identity", "admin"),
                                         mqtt::Property::integer(mqtt::prop::WillDelayInterval, 5),
                                         mqtt::Property::user("k", "v"),
                                         mqtt::Property::user("moat-identity", "root")};
    stampWillProperties(props, "dev-1");
    CHECK(props ==
          std::vector<mqtt::Property>{mqtt::Property::integer(mqtt::prop::WillDelayInterval, 5),
                                      mqtt::Property::user("k", "v"),
                                      mqtt::Property::user("moat-identity", "dev-1")});
    std::vector<mqtt::Property> none;
    stampWillProperties(none, "d");
    CHECK(none == std::vector<mqtt::Property>{mqtt::Property::user("moat-identity", "d")});
}
