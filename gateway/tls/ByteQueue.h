#pragma once
// A FIFO of bytes for the ciphertext on either side of a TlsSession. Appends at the tail,
// consumes from the head without moving memory, compacts only when at least half of the
// buffer is dead (amortised O(1) per byte), and gives its memory back once drained if it
// had grown past kRetainCapacity — so a burst (a 1 MiB publish) does not pin a megabyte to
// a connection that then goes idle, while steady small traffic allocates nothing.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace moat::tls {

class ByteQueue {
  public:
    static constexpr size_t kRetainCapacity = 2048;

    size_t size() const { return buf_.size() - head_; }
    bool empty() const { return head_ == buf_.size(); }
    size_t capacity() const { return buf_.capacity(); }
    std::span<const uint8_t> view() const { return {buf_.data() + head_, size()}; }

    // May throw std::bad_alloc (callers that sit under C code catch it).
    void append(const uint8_t* data, size_t len) {
        if (len == 0) return;
        if (head_ != 0 && head_ >= size()) {
            buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
        buf_.insert(buf_.end(), data, data + len);
    }

    size_t take(uint8_t* dst, size_t cap) {
        size_t n = std::min(cap, size());
        if (n != 0) std::memcpy(dst, buf_.data() + head_, n);
        consume(n);
        return n;
    }

    void consume(size_t n) {
        head_ += std::min(n, size());
        if (head_ == buf_.size()) clear();
    }

    // Drops the storage too (nothing buffered is lost: only called when empty or on purpose).
    void release() {
        head_ = 0;
        std::vector<uint8_t>().swap(buf_);
    }

    void clear() {
        head_ = 0;
        if (buf_.capacity() > kRetainCapacity) {
            std::vector<uint8_t>().swap(buf_);
        } else {
            buf_.clear();
        }
    }

  private:
    std::vector<uint8_t> buf_;
    size_t head_ = 0;
};

}  // namespace moat::tls
