#pragma once
// Internal helpers of the codec: bounds-checked big-endian reading over a borrowed buffer and
// appending writers. Not part of the public API.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace moat::mqtt::wire {

inline constexpr uint32_t kMaxVarint = 268435455;  // 0xFF,0xFF,0xFF,0x7F

enum class VarintStatus { Ok, NeedMore, Malformed };

// Decodes an MQTT Variable Byte Integer. Rejects a 5th byte and non-minimal encodings
// (MQTT-1.5.5-1): a proxy must not let two parsers disagree on where a packet ends.
inline VarintStatus decodeVarint(const uint8_t* p, size_t len, uint32_t& value, size_t& used) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) {
        if (i >= len) return VarintStatus::NeedMore;
        const uint8_t b = p[i];
        v |= uint32_t(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            if (b == 0 && i > 0) return VarintStatus::Malformed;  // overlong
            value = v;
            used = i + 1;
            return VarintStatus::Ok;
        }
    }
    return VarintStatus::Malformed;
}

inline size_t varintSize(uint32_t v) {
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

class Reader {
  public:
    Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}

    size_t remaining() const { return size_t(end_ - p_); }
    bool empty() const { return p_ == end_; }
    const uint8_t* pos() const { return p_; }

    bool u8(uint8_t& v) {
        if (remaining() < 1) return false;
        v = *p_++;
        return true;
    }
    bool u16(uint16_t& v) {
        if (remaining() < 2) return false;
        v = uint16_t(p_[0] << 8 | p_[1]);
        p_ += 2;
        return true;
    }
    bool u32(uint32_t& v) {
        if (remaining() < 4) return false;
        v = uint32_t(p_[0]) << 24 | uint32_t(p_[1]) << 16 | uint32_t(p_[2]) << 8 | p_[3];
        p_ += 4;
        return true;
    }
    bool varint(uint32_t& v) {
        size_t used = 0;
        if (decodeVarint(p_, remaining(), v, used) != VarintStatus::Ok) return false;
        p_ += used;
        return true;
    }
    bool bytes(size_t n, std::string_view& out) {
        if (remaining() < n) return false;
        out = std::string_view(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        return true;
    }
    // Two-byte length then that many bytes (UTF-8 string or binary data).
    bool prefixed(std::string_view& out) {
        uint16_t n = 0;
        return u16(n) && bytes(n, out);
    }
    std::string_view rest() {
        std::string_view out(reinterpret_cast<const char*>(p_), remaining());
        p_ = end_;
        return out;
    }

  private:
    const uint8_t* p_;
    const uint8_t* end_;
};

using Buffer = std::vector<uint8_t>;

inline void putU8(Buffer& out, uint8_t v) {
    out.push_back(v);
}
inline void putU16(Buffer& out, uint16_t v) {
    const uint8_t b[2] = {uint8_t(v >> 8), uint8_t(v)};
    out.insert(out.end(), b, b + 2);
}
inline void putU32(Buffer& out, uint32_t v) {
    const uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    out.insert(out.end(), b, b + 4);
}
inline void putVarint(Buffer& out, uint32_t v) {
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        if (v) b |= 0x80;
        out.push_back(b);
    } while (v);
}
inline void putBytes(Buffer& out, std::string_view s) {
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(s.data()),
               reinterpret_cast<const uint8_t*>(s.data()) + s.size());
}
// False if the string does not fit a two-byte length.
inline bool putPrefixed(Buffer& out, std::string_view s) {
    if (s.size() > 0xFFFF) return false;
    putU16(out, uint16_t(s.size()));
    putBytes(out, s);
    return true;
}

// A packet is encoded by reserving the largest fixed header, appending the body, then writing
// the real header right-aligned and closing the gap: one pass, no size pre-computation.
inline constexpr size_t kHeaderReserve = 5;

inline size_t beginPacket(Buffer& out) {
    const size_t start = out.size();
    out.resize(start + kHeaderReserve);
    return start;
}

// Returns false (and removes the partial packet) if the body exceeds the largest remaining
// length or `ok` is false (an earlier field did not fit).
inline bool finishPacket(Buffer& out, size_t start, uint8_t firstByte, bool ok = true) {
    const size_t body = out.size() - start - kHeaderReserve;
    if (!ok || body > kMaxVarint) {
        out.resize(start);
        return false;
    }
    uint8_t header[kHeaderReserve];
    header[0] = firstByte;
    size_t n = 1;
    uint32_t v = uint32_t(body);
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        if (v) b |= 0x80;
        header[n++] = b;
    } while (v);
    const size_t gap = kHeaderReserve - n;
    std::memcpy(out.data() + start + gap, header, n);
    if (gap) out.erase(out.begin() + long(start), out.begin() + long(start + gap));
    return true;
}

}  // namespace moat::mqtt::wire
