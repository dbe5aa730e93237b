// Framing a byte stream: a sequence of packets of every type, delivered in two pieces split at
// every byte offset and one byte at a time, must come out as the same packets, whatever the
// read boundaries. Mirrors how the gateway buffers socket reads.
#include "tests/unit/mqtt/TestUtil.h"

using namespace moat::mqtt;
using namespace moat::mqtt::test;

namespace {

// The gateway's read loop in miniature: append, then cut out every complete packet.
class Deframer {
  public:
    // Returns false once the stream is malformed (sticky).
    bool push(const uint8_t* data, size_t len) {
        if (bad_) return false;
        buf_.insert(buf_.end(), data, data + len);
        size_t off = 0;
        for (;;) {
            Frame f;
            const FrameStatus s = parseFrame(buf_.data() + off, buf_.size() - off, f);
            if (s == FrameStatus::Malformed) {
                bad_ = true;
                break;
            }
            if (s == FrameStatus::NeedMore || buf_.size() - off < f.totalSize()) break;
            packets_.emplace_back(buf_.begin() + long(off),
                                  buf_.begin() + long(off + f.totalSize()));
            off += f.totalSize();
        }
        buf_.erase(buf_.begin(), buf_.begin() + long(off));
        return !bad_;
    }
    const std::vector<Bytes>& packets() const { return packets_; }
    size_t buffered() const { return buf_.size(); }
    bool bad() const { return bad_; }

  private:
    Bytes buf_;
    std::vector<Bytes> packets_;
    bool bad_ = false;
};

std::vector<Bytes> samplePackets(ProtocolVersion v) {
    const bool v5 = v == ProtocolVersion::V5;
    std::vector<Bytes> out;
    ConnectPacket c;
    c.version = v;
    c.clientId = "stream";
    c.username = "u";
    c.password = "p";
    if (v5) c.properties = {Property::integer(prop::TopicAliasMaximum, 4)};
    out.push_back(encodeConnect(c));
    out.push_back(encodeConnack(v, false, 0));
    PublishPacket big;
    big.topic = "big";
    big.payload.assign(20000, 'x');  // three-byte remaining length
    big.qos = 1;
    big.packetId = 1;
    out.push_back(encodePublish(big, v));
    PublishPacket mid;
    mid.topic = "mid";
    mid.payload.assign(200, 'y');  // two-byte remaining length
    out.push_back(encodePublish(mid, v));
    PublishPacket empty;
    empty.topic = "e";
    out.push_back(encodePublish(empty, v));
    out.push_back(encodeAck(AckPacket{PacketType::Puback, 1, 0, {}}, v));
    out.push_back(encodeAck(AckPacket{PacketType::Pubrec, 2, 0, {}}, v));
    out.push_back(encodeAck(AckPacket{PacketType::Pubrel, 2, 0, {}}, v));
    out.push_back(encodeAck(AckPacket{PacketType::Pubcomp, 2, 0, {}}, v));
    out.push_back(encodeSubscribe(SubscribePacket{3, {{"a/#", 1}, {"b/+", 0}}, {}}, v));
    out.push_back(encodeSuback(SubackPacket{3, {1, 0}, {}}, v));
    out.push_back(encodeUnsubscribe(UnsubscribePacket{4, {"a/#"}, {}}, v));
    out.push_back(encodeUnsuback(
        UnsubackPacket{4, v5 ? std::vector<uint8_t>{0} : std::vector<uint8_t>{}, {}}, v));
    out.push_back(encodePingreq());
    out.push_back(encodePingresp());
    if (v5)
        out.push_back(
            encodeAuth(AuthPacket{0x18, {Property::string(prop::AuthenticationMethod, "m")}}));
    out.push_back(encodeDisconnect(v, 0));
    for (const Bytes& p : out) REQUIRE(!p.empty());
    return out;
}

Bytes concat(const std::vector<Bytes>& packets) {
    Bytes all;
    for (const Bytes& p : packets) all.insert(all.end(), p.begin(), p.end());
    return all;
}

}  // namespace

TEST_CASE("stream: every split point yields the same packets") {
    for (ProtocolVersion v : kAllVersions) {
        CAPTURE(versionName(v));
        const std::vector<Bytes> packets = samplePackets(v);
        const Bytes all = concat(packets);
        for (size_t cut = 0; cut <= all.size(); ++cut) {
            Deframer d;
            REQUIRE(d.push(all.data(), cut));
            REQUIRE(d.push(all.data() + cut, all.size() - cut));
            if (d.packets() != packets) {
                FAIL("split at " << cut);
            }
            REQUIRE(d.buffered() == 0);
        }
        // Every packet also decodes.
        for (const Bytes& p : packets) {
            CAPTURE(p[0]);
            CHECK(decodeAny(p, v) == reason::Success);
        }
    }
}

TEST_CASE("stream: byte by byte, and three-way splits around the headers") {
    for (ProtocolVersion v : kAllVersions) {
        const std::vector<Bytes> packets = samplePackets(v);
        const Bytes all = concat(packets);
        Deframer d;
        for (size_t i = 0; i < all.size(); ++i) REQUIRE(d.push(&all[i], 1));
        CHECK(d.packets() == packets);
        // Cut in three around every header boundary (the interesting places).
        size_t off = 0;
        for (const Bytes& p : packets) {
            for (size_t a = off; a < off + 6 && a <= all.size(); ++a) {
                for (size_t b = a; b < a + 6 && b <= all.size(); ++b) {
                    Deframer t;
                    REQUIRE(t.push(all.data(), a));
                    REQUIRE(t.push(all.data() + a, b - a));
                    REQUIRE(t.push(all.data() + b, all.size() - b));
                    REQUIRE(t.packets() == packets);
                }
            }
            off += p.size();
        }
    }
}

TEST_CASE("stream: a malformed header stops the stream exactly there") {
    const std::vector<Bytes> packets = samplePackets(ProtocolVersion::V311);
    Bytes all = concat({packets[0], packets[1]});
    const size_t good = all.size();
    for (const Bytes& bad :
         {hex("00 00"), hex("30 80 00"), hex("30 FF FF FF FF 01"), hex("30 80 80 80 80")}) {
        Bytes stream = all;
        stream.insert(stream.end(), bad.begin(), bad.end());
        stream.insert(stream.end(), packets[2].begin(), packets[2].end());
        for (size_t cut = 0; cut <= stream.size(); ++cut) {
            Deframer d;
            d.push(stream.data(), cut);
            d.push(stream.data() + cut, stream.size() - cut);
            CHECK(d.bad());
            REQUIRE(d.packets().size() == 2);  // the packets before the bad one, no more
        }
    }
    (void)good;
}
