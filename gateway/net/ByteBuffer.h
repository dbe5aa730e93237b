#pragma once
// A growable byte buffer with a consumed prefix, for the partial MQTT packet left over
// between two reads. Empty buffers release their memory (idle connections stay small).

#include <cstdint>
#include <cstring>
#include <memory>

namespace moat::net {

class ByteBuffer {
  public:
    const uint8_t* data() const { return data_.get() + begin_; }
    uint8_t* data() { return data_.get() + begin_; }
    size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    size_t capacity() const { return capacity_; }

    void append(const uint8_t* p, size_t n) {
        reserveTail(n);
        std::memcpy(data_.get() + end_, p, n);
        end_ += n;
    }
    void consume(size_t n) {
        begin_ += n;
        if (begin_ == end_) clear();
    }
    // Frees the memory too: an idle connection should not pin a 64 KiB buffer.
    void clear() {
        begin_ = end_ = 0;
        if (capacity_ > kKeepCapacity) {
            data_.reset();
            capacity_ = 0;
        }
    }
    void release() {
        begin_ = end_ = 0;
        data_.reset();
        capacity_ = 0;
    }

  private:
    static constexpr size_t kKeepCapacity = 0;  // keep nothing when empty

    void reserveTail(size_t n) {
        if (end_ + n <= capacity_) return;
        size_t live = end_ - begin_;
        if (live + n <= capacity_ && begin_ > 0) {  // slide the live bytes to the front
            std::memmove(data_.get(), data_.get() + begin_, live);
            begin_ = 0;
            end_ = live;
            return;
        }
        size_t cap = capacity_ ? capacity_ : 256;
        while (cap < live + n) cap *= 2;
        std::unique_ptr<uint8_t[]> fresh(new uint8_t[cap]);
        if (live) std::memcpy(fresh.get(), data_.get() + begin_, live);
        data_ = std::move(fresh);
        capacity_ = cap;
        begin_ = 0;
        end_ = live;
    }

    std::unique_ptr<uint8_t[]> data_;
    size_t begin_ = 0, end_ = 0, capacity_ = 0;
};

}  // namespace moat::net
