#pragma once
// The little MQTT 3.1.1 (and v5 for the sink's answers) moat-bench needs: packet builders and
// a frame splitter over a growable receive buffer. Deliberately independent of gateway/mqtt.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tests/bench/Conn.h"

namespace moat::bench::mqtt {

enum Type : uint8_t {
    kConnect = 1,
    kConnack = 2,
    kPublish = 3,
    kPuback = 4,
    kPubrec = 5,
    kPubrel = 6,
    kPubcomp = 7,
    kSubscribe = 8,
    kSuback = 9,
    kUnsubscribe = 10,
    kUnsuback = 11,
    kPingreq = 12,
    kPingresp = 13,
    kDisconnect = 14,
};

void appendRemainingLength(std::vector<uint8_t>& out, uint32_t n);
std::vector<uint8_t> connect(std::string_view clientId, uint16_t keepalive);
std::vector<uint8_t> subscribe(uint16_t packetId, std::string_view filter, uint8_t qos);
std::vector<uint8_t> disconnect();

// Appends one PUBLISH with a zero-filled payload of payloadSize bytes. Returns the offset of
// the payload inside `out`; the packet id (QoS > 0) sits in the two bytes just before it.
size_t appendPublish(std::vector<uint8_t>& out, std::string_view topic, uint8_t qos,
                     uint16_t packetId, size_t payloadSize);
inline void appendAck(std::vector<uint8_t>& out, Type type, uint16_t packetId) {
    uint8_t flags = type == kPubrel ? 0x02 : 0x00;
    out.insert(out.end(), {static_cast<uint8_t>(type << 4 | flags), 2,
                           static_cast<uint8_t>(packetId >> 8), static_cast<uint8_t>(packetId)});
}
inline uint16_t readU16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

struct Frame {
    uint8_t header = 0;
    const uint8_t* body = nullptr;  // valid until the next FrameReader::fill
    uint32_t length = 0;
    Type type() const { return static_cast<Type>(header >> 4); }
    uint8_t qos() const { return (header >> 1) & 3; }
};

// PUBLISH body fields (3.1.1 layout; v5 properties are not parsed by the bench clients).
struct PublishView {
    uint16_t packetId = 0;
    const uint8_t* payload = nullptr;
    uint32_t payloadLength = 0;
};
bool parsePublish(const Frame& f, PublishView& out);

class FrameReader {
  public:
    explicit FrameReader(size_t capacity = 256 * 1024) : buf_(capacity) {}
    // Reads once from c into the buffer. >0 bytes, 0 timeout, -1 EOF / error.
    ssize_t fill(Conn& c, int timeoutMs);
    // Moves the next complete frame into f. False when more bytes are needed or the stream is
    // malformed (see malformed()).
    bool next(Frame& f);
    bool malformed() const { return malformed_; }
    // Bytes received but not yet returned as frames (the sink's STATS probe peeks at them).
    std::string_view pending() const {
        return {reinterpret_cast<const char*>(buf_.data() + start_), end_ - start_};
    }

  private:
    std::vector<uint8_t> buf_;
    size_t start_ = 0;
    size_t end_ = 0;
    size_t need_ = 0;  // size of the incomplete frame at start_, once its header is known
    bool malformed_ = false;
};

// A connected MQTT session: the transport plus its reader.
struct Client {
    std::unique_ptr<Conn> conn;
    FrameReader reader;
};

// Opens the transport, sends CONNECT and waits for CONNACK (return code 0). Null on failure.
std::unique_ptr<Client> connectClient(const Endpoint& ep, const std::string& clientId,
                                      int timeoutMs, std::string& error);
// SUBSCRIBE one filter and wait for a SUBACK granting it. False on failure.
bool subscribeAndWait(Client& c, std::string_view filter, uint8_t qos, int timeoutMs,
                      std::string& error);

}  // namespace moat::bench::mqtt
