#include "tests/bench/Mqtt.h"

#include <chrono>
#include <cstring>

namespace moat::bench::mqtt {
namespace {

void appendString(std::vector<uint8_t>& out, std::string_view s) {
    out.push_back(static_cast<uint8_t>(s.size() >> 8));
    out.push_back(static_cast<uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
}

int remainingMs(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

void appendRemainingLength(std::vector<uint8_t>& out, uint32_t n) {
    do {
        uint8_t b = n % 128;
        n /= 128;
        if (n > 0) b |= 0x80;
        out.push_back(b);
    } while (n > 0);
}

std::vector<uint8_t> connect(std::string_view clientId, uint16_t keepalive) {
    std::vector<uint8_t> body;
    appendString(body, "MQTT");
    body.push_back(4);     // protocol level 3.1.1
    body.push_back(0x02);  // clean session
    body.push_back(static_cast<uint8_t>(keepalive >> 8));
    body.push_back(static_cast<uint8_t>(keepalive));
    appendString(body, clientId);
    std::vector<uint8_t> out{kConnect << 4};
    appendRemainingLength(out, static_cast<uint32_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

std::vector<uint8_t> subscribe(uint16_t packetId, std::string_view filter, uint8_t qos) {
    std::vector<uint8_t> body{static_cast<uint8_t>(packetId >> 8), static_cast<uint8_t>(packetId)};
    appendString(body, filter);
    body.push_back(qos);
    std::vector<uint8_t> out{kSubscribe << 4 | 0x02};
    appendRemainingLength(out, static_cast<uint32_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

std::vector<uint8_t> disconnect() {
    return {kDisconnect << 4, 0};
}

size_t appendPublish(std::vector<uint8_t>& out, std::string_view topic, uint8_t qos,
                     uint16_t packetId, size_t payloadSize) {
    uint32_t len = static_cast<uint32_t>(2 + topic.size() + (qos ? 2 : 0) + payloadSize);
    out.push_back(static_cast<uint8_t>(kPublish << 4 | qos << 1));
    appendRemainingLength(out, len);
    appendString(out, topic);
    if (qos) {
        out.push_back(static_cast<uint8_t>(packetId >> 8));
        out.push_back(static_cast<uint8_t>(packetId));
    }
    size_t payload = out.size();
    out.resize(out.size() + payloadSize, 0);
    return payload;
}

bool parsePublish(const Frame& f, PublishView& out) {
    if (f.length < 2) return false;
    uint32_t topicLen = readU16(f.body);
    uint32_t pos = 2 + topicLen;
    if (f.qos() > 0) {
        if (pos + 2 > f.length) return false;
        out.packetId = readU16(f.body + pos);
        pos += 2;
    } else {
        out.packetId = 0;
    }
    if (pos > f.length) return false;
    out.payload = f.body + pos;
    out.payloadLength = f.length - pos;
    return true;
}

ssize_t FrameReader::fill(Conn& c, int timeoutMs) {
    // Compact when the unread tail is small or the free space cannot take a full TLS record.
    if (start_ == end_) {
        start_ = end_ = 0;
    } else if (start_ > 0 && (buf_.size() - end_ < 16 * 1024 || need_ > buf_.size() - start_)) {
        std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
    }
    if (need_ > buf_.size()) buf_.resize(need_);
    if (buf_.size() - end_ < 16 * 1024) buf_.resize(buf_.size() * 2);
    ssize_t r = c.read(buf_.data() + end_, buf_.size() - end_, timeoutMs);
    if (r > 0) end_ += static_cast<size_t>(r);
    return r;
}

bool FrameReader::next(Frame& f) {
    size_t avail = end_ - start_;
    if (avail < 2) return false;
    const uint8_t* p = buf_.data() + start_;
    uint32_t len = 0;
    size_t i = 1;
    for (int shift = 0;; shift += 7, ++i) {
        if (i > 4) {
            malformed_ = true;
            return false;
        }
        if (i >= avail) return false;
        len |= static_cast<uint32_t>(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) break;
    }
    size_t total = i + 1 + len;
    if (avail < total) {
        need_ = total;
        return false;
    }
    need_ = 0;
    f.header = p[0];
    f.body = p + i + 1;
    f.length = len;
    start_ += total;
    return true;
}

std::unique_ptr<Client> connectClient(const Endpoint& ep, const std::string& clientId,
                                      int timeoutMs, std::string& error) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    auto c = std::make_unique<Client>();
    c->conn = Conn::open(ep, timeoutMs, error);
    if (!c->conn) return nullptr;
    auto pkt = connect(clientId, 120);
    if (!c->conn->writeAll(pkt.data(), pkt.size())) {
        error = "CONNECT: write failed";
        return nullptr;
    }
    Frame f;
    for (;;) {
        while (c->reader.next(f)) {
            if (f.type() != kConnack || f.length < 2) {
                error = "CONNECT: unexpected packet type " + std::to_string(f.type());
                return nullptr;
            }
            if (f.body[1] != 0) {
                error = "CONNECT refused, return code " + std::to_string(f.body[1]);
                return nullptr;
            }
            return c;
        }
        ssize_t r = c->reader.fill(*c->conn, remainingMs(deadline));
        if (r == 0) {
            error = "CONNECT: no CONNACK in time";
            return nullptr;
        }
        if (r < 0 || c->reader.malformed()) {
            error = "CONNECT: connection closed before CONNACK";
            return nullptr;
        }
    }
}

bool subscribeAndWait(Client& c, std::string_view filter, uint8_t qos, int timeoutMs,
                      std::string& error) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    auto pkt = subscribe(1, filter, qos);
    if (!c.conn->writeAll(pkt.data(), pkt.size())) {
        error = "SUBSCRIBE: write failed";
        return false;
    }
    Frame f;
    for (;;) {
        while (c.reader.next(f)) {
            if (f.type() != kSuback) continue;
            if (f.length < 3 || f.body[2] >= 0x80) {
                error = "SUBSCRIBE refused";
                return false;
            }
            return true;
        }
        ssize_t r = c.reader.fill(*c.conn, remainingMs(deadline));
        if (r <= 0 || c.reader.malformed()) {
            error = r == 0 ? "SUBSCRIBE: no SUBACK in time" : "SUBSCRIBE: connection closed";
            return false;
        }
    }
}

}  // namespace moat::bench::mqtt
