#include "gateway/net/StreamWriter.h"

#include <cstring>

namespace moat::net {

namespace {

struct WriteRequest {
    uv_write_t req;
    uint8_t* data;
    WriteDoneFn done;
};

void onWritten(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteRequest*>(req);
    WriteDoneFn done = w->done;
    uv_stream_t* stream = req->handle;
    delete[] w->data;
    delete w;
    if (done) done(stream, status);
}

// Queues [data, data+len) which the request now owns (new[]-allocated).
int queueOwned(uv_stream_t* stream, uint8_t* data, size_t len, WriteDoneFn done) {
    auto* w = new WriteRequest{{}, data, done};
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(data), static_cast<unsigned>(len));
    int rc = uv_write(&w->req, stream, &buf, 1, onWritten);
    if (rc < 0) {
        delete[] data;
        delete w;
    }
    return rc;
}

// Tries a direct write when nothing is queued (ordering). Returns bytes written or error.
ssize_t tryDirect(uv_stream_t* stream, const uint8_t* data, size_t len) {
    if (uv_stream_get_write_queue_size(stream) != 0) return 0;
    uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(data)),
                               static_cast<unsigned>(len));
    int n = uv_try_write(stream, &buf, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) return 0;
    return n;
}

}  // namespace

int writeToStream(uv_stream_t* stream, const uint8_t* data, size_t len, WriteDoneFn done) {
    if (len == 0) return 0;
    ssize_t n = tryDirect(stream, data, len);
    if (n < 0) return static_cast<int>(n);
    if (static_cast<size_t>(n) == len) return 0;
    size_t rest = len - n;
    auto* copy = new uint8_t[rest];
    std::memcpy(copy, data + n, rest);
    return queueOwned(stream, copy, rest, done);
}

}  // namespace moat::net
