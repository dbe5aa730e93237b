#pragma once
// Writing to a libuv stream the way a proxy should: uv_try_write first (the common case
// sends straight from the caller's buffer with no copy), and only what the kernel did not
// take is copied into a heap request owned by libuv until its callback.

#include <uv.h>

#include <cstddef>
#include <cstdint>

namespace moat::net {

// Called when a queued write completes; `status` < 0 on error.
using WriteDoneFn = void (*)(uv_stream_t* stream, int status);

// Writes len bytes. Returns 0, or a libuv error code (the connection should be closed).
int writeToStream(uv_stream_t* stream, const uint8_t* data, size_t len, WriteDoneFn done);

inline size_t queuedBytes(const uv_stream_t* s) {
    return uv_stream_get_write_queue_size(s);
}

}  // namespace moat::net
