#include "gateway/tls/TlsSession.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace moat::tls {

// The session's own BIO: reads come from in_, writes go to out_. A custom BIO rather than
// BIO_s_mem so the buffers release their memory once drained (BIO_s_mem never shrinks) and
// so there is one buffer per direction instead of two.
struct SessionBio {
    static TlsSession* session(BIO* bio) { return static_cast<TlsSession*>(BIO_get_data(bio)); }

    static int read(BIO* bio, char* data, size_t len, size_t* done) {
        BIO_clear_retry_flags(bio);
        *done = session(bio)->takeInput(reinterpret_cast<uint8_t*>(data), len);
        if (*done == 0) {
            BIO_set_retry_read(bio);  // "no data yet", never EOF: the socket's EOF is the caller's
            return 0;
        }
        return 1;
    }

    static int write(BIO* bio, const char* data, size_t len, size_t* done) {
        BIO_clear_retry_flags(bio);
        try {
            session(bio)->out_.append(reinterpret_cast<const uint8_t*>(data), len);
        } catch (const std::bad_alloc&) {
            *done = 0;
            return 0;  // OpenSSL sees a write error; never let an exception cross C code
        }
        *done = len;
        return 1;
    }

    static long ctrl(BIO* bio, int cmd, long, void*) {
        switch (cmd) {
            case BIO_CTRL_FLUSH:
                return 1;
            case BIO_CTRL_PENDING:
                return static_cast<long>(session(bio)->bufferedInput());
            case BIO_CTRL_WPENDING:
                return static_cast<long>(session(bio)->out_.size());
            default:
                return 0;
        }
    }

    static int create(BIO* bio) {
        BIO_set_init(bio, 1);
        return 1;
    }

    static BIO_METHOD* method() {
        // Created once per process, shared by every session (freed at exit by no one: it is
        // a handful of bytes and OpenSSL keeps no reference to it past the last BIO).
        static BIO_METHOD* const m = [] {
            BIO_METHOD* meth =
                BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "moat tls session");
            if (meth != nullptr) {
                BIO_meth_set_read_ex(meth, read);
                BIO_meth_set_write_ex(meth, write);
                BIO_meth_set_ctrl(meth, ctrl);
                BIO_meth_set_create(meth, create);
            }
            return meth;
        }();
        return m;
    }
};

TlsSession::TlsSession(SSL_CTX* ctx) {
    if (ctx == nullptr || SSL_CTX_up_ref(ctx) != 1) {
        fail("cannot create TLS session");
        return;
    }
    ctx_.reset(ctx);
}

bool TlsSession::createSsl() {
    ERR_clear_error();
    BIO_METHOD* method = SessionBio::method();
    ssl_.reset(method != nullptr ? SSL_new(ctx_.get()) : nullptr);
    BIO* bio = ssl_ ? BIO_new(method) : nullptr;
    if (bio == nullptr) {
        fail("cannot create TLS session");
        return false;
    }
    ctx_.reset();  // the SSL holds its own reference now
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_.get(), bio, bio);  // one BIO for both directions; SSL owns it
    SSL_set_accept_state(ssl_.get());
    return true;
}

uint8_t TlsSession::inputAt(size_t i) const {
    const std::span<const uint8_t> head = in_.view();
    return i < head.size() ? head[i] : borrowed_[i - head.size()];
}

size_t TlsSession::completeRecordBytes() const {
    const size_t total = bufferedInput();
    size_t p = 0;
    while (p < total) {
        // Not a TLS record (an SSLv2 hello, an HTTP request, junk) or longer than TLS
        // allows: no gate, OpenSSL gives the precise refusal at once.
        const uint8_t type = inputAt(p);
        if (type < 20 || type > 24) return kUngated;
        if (p + kRecordHeader > total) break;
        const size_t len = size_t(inputAt(p + 3)) << 8 | inputAt(p + 4);
        if (len > kMaxRecordBody) return kUngated;
        if (p + kRecordHeader + len > total) break;
        p += kRecordHeader + len;
    }
    return p;
}

std::optional<TlsSession::Status> TlsSession::holdInput() {
    if (admitHandshakeInput()) return std::nullopt;
    keepBorrowedRest();
    return failed_ ? Status::Error : Status::WantMore;
}

bool TlsSession::admitHandshakeInput() {
    if (ssl_ && SSL_is_init_finished(ssl_.get())) {
        handshakeBudget_ = kUngated;
        return true;
    }
    handshakeBudget_ = completeRecordBytes();
    if (handshakeBudget_ == 0) return false;  // a partial record: keep it, spend nothing
    return ssl_ || createSsl();
}

void TlsSession::feed(const uint8_t* data, size_t len) {
    if (failed_ || closed_ || len == 0) return;
    if (in_.empty() && borrowed_.empty()) {
        borrowed_ = std::span<const uint8_t>(data, len);  // the common case: no copy at all
        return;
    }
    keepBorrowedRest();
    if (failed_) return;
    try {
        in_.append(data, len);
    } catch (const std::bad_alloc&) {
        fail("out of memory");
    }
}

size_t TlsSession::takeInput(uint8_t* dst, size_t len) {
    len = std::min(len, handshakeBudget_);
    size_t n = 0;
    if (!in_.empty()) {
        n = in_.take(dst, len);
    } else {
        n = std::min(len, borrowed_.size());
        if (n != 0) std::memcpy(dst, borrowed_.data(), n);
        borrowed_ = borrowed_.subspan(n);
    }
    if (handshakeBudget_ != kUngated) handshakeBudget_ -= n;
    return n;
}

void TlsSession::keepBorrowedRest() {
    if (borrowed_.empty()) return;
    const std::span<const uint8_t> rest = borrowed_;
    borrowed_ = {};
    if (failed_ || closed_) return;
    try {
        in_.append(rest.data(), rest.size());
    } catch (const std::bad_alloc&) {
        fail("out of memory");
    }
}

void TlsSession::releaseIdleBuffers() {
    if (in_.empty()) in_.release();
    if (out_.empty()) out_.release();
}

bool TlsSession::handshakeComplete() const {
    return ssl_ && !failed_ && SSL_is_init_finished(ssl_.get());
}

TlsSession::Status TlsSession::handshake() {
    if (failed_) return Status::Error;
    if (closed_) return Status::Closed;
    if (ssl_ && SSL_is_init_finished(ssl_.get())) {
        keepBorrowedRest();  // fed data stays ours until read()
        return Status::Ok;
    }
    if (auto held = holdInput()) return *held;
    ERR_clear_error();
    int ret = SSL_do_handshake(ssl_.get());
    Status st = ret == 1 ? Status::Ok : classify(ret);
    keepBorrowedRest();
    return st;
}

TlsSession::Status TlsSession::read(std::vector<uint8_t>& out) {
    if (failed_) return Status::Error;
    if (closed_) return Status::Closed;
    if (auto held = holdInput()) return *held;
    ERR_clear_error();
    // Decrypt into the stack, append what arrived: no zero-filling of the caller's vector
    // and no over-allocation for the common small record.
    uint8_t chunk[kReadChunk];
    bool appended = false;
    for (;;) {
        size_t n = 0;
        int ret = SSL_read_ex(ssl_.get(), chunk, sizeof chunk, &n);
        if (ret == 1) {
            try {
                out.insert(out.end(), chunk, chunk + n);
            } catch (const std::bad_alloc&) {
                fail("out of memory");
                return Status::Error;
            }
            appended = true;
            continue;  // drain every record already fed (and SSL_pending)
        }
        Status status = classify(ret);
        keepBorrowedRest();
        if (status == Status::WantMore && appended) return Status::Ok;
        return status;
    }
}

TlsSession::Status TlsSession::write(const uint8_t* data, size_t len) {
    if (failed_) return Status::Error;
    if (len == 0) return Status::Ok;
    if (auto held = holdInput()) return *held;
    ERR_clear_error();
    size_t written = 0;
    int ret = SSL_write_ex(ssl_.get(), data, len, &written);
    // Without SSL_MODE_ENABLE_PARTIAL_WRITE and with a BIO that accepts everything, success
    // means every byte was encrypted.
    Status st = ret == 1 ? Status::Ok : classify(ret);
    keepBorrowedRest();  // before the handshake completes, SSL_write reads handshake messages
    return st;
}

void TlsSession::shutdown() {
    keepBorrowedRest();  // whatever happens below, the caller's buffer is no longer ours
    if (failed_ || !ssl_ || !SSL_is_init_finished(ssl_.get()) ||
        (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) != 0) {
        return;
    }
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // 0 = sent, peer's not yet seen; either way nothing to wait for
    ERR_clear_error();
}

TlsSession::Status TlsSession::classify(int ret) {
    switch (SSL_get_error(ssl_.get(), ret)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            ERR_clear_error();
            return Status::WantMore;
        case SSL_ERROR_ZERO_RETURN:
            closed_ = true;
            in_.clear();
            borrowed_ = {};
            ERR_clear_error();
            return Status::Closed;
        default:
            fail("TLS failure");
            return Status::Error;
    }
}

void TlsSession::fail(const char* fallback) {
    failed_ = true;
    in_.clear();
    borrowed_ = {};
    long verify = ssl_ ? SSL_get_verify_result(ssl_.get()) : X509_V_OK;
    if (verify != X509_V_OK) {
        error_ = X509_verify_cert_error_string(verify);
        ERR_clear_error();
    } else {
        error_ = takeOpensslError(fallback);
    }
}

X509* TlsSession::peerCertificate() const {
    return ssl_ ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
}

long TlsSession::verifyResult() const {
    return ssl_ ? SSL_get_verify_result(ssl_.get()) : X509_V_ERR_UNSPECIFIED;
}

const char* TlsSession::protocolVersion() const {
    return ssl_ ? SSL_get_version(ssl_.get()) : "unknown";
}

bool TlsSession::sessionReused() const {
    return ssl_ && SSL_session_reused(ssl_.get()) == 1;
}

const char* TlsSession::cipherName() const {
    const char* name = ssl_ ? SSL_get_cipher_name(ssl_.get()) : nullptr;
    return name != nullptr ? name : "(none)";
}

}  // namespace moat::tls
