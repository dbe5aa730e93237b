#pragma once
// One server-side TLS connection, sans I/O (node's TLSWrap / nginx's model): the caller moves
// ciphertext in with feed() and out with takeOutput(), and plaintext with read() / write().
// No socket, no event loop, no thread affinity beyond "one thread at a time".
//
// The loop a connection runs:
//   on socket data:   feed(bytes); if (!handshakeComplete()) s = handshake();
//                     if handshake is done, s = read(plaintext)   (same feed may hold data)
//                     -> then ALWAYS flush: takeOutput() until pendingOutput() == 0
//                        (handshake messages, session tickets, alerts, KeyUpdate replies)
//   to send:          write(bytes)  -> flush
//   to close:         shutdown()    -> flush, then close the socket
// Status: Ok = progress; WantMore = need more ciphertext; Closed = the peer sent close_notify;
// Error = fatal (lastError() says why; flush once more to send the alert, then close).
// Closed and Error are sticky. read() may append plaintext and still return Closed / Error:
// the bytes before the close are authentic.
//
// Memory: the SSL object plus two ByteQueues that shrink back when drained;
// SSL_MODE_RELEASE_BUFFERS (set by TlsContext) frees OpenSSL's record buffers while idle.
// Ciphertext is not copied on the way in unless a record is left incomplete: feed() borrows
// the caller's buffer and the next SSL call reads from it (see feed()); an idle session
// therefore holds no input buffer at all. The SSL object itself is only created when the
// first complete TLS record has arrived, and until the handshake is done OpenSSL is handed
// whole records only: a silent or dribbling client costs a few hundred bytes, not ~45 KiB.
// The session holds a reference to the SSL_CTX, so it may outlive its TlsContext (reload).

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gateway/tls/ByteQueue.h"
#include "gateway/tls/Openssl.h"
#include "gateway/tls/TicketChain.h"

namespace moat::tls {

class TlsSession {
  public:
    enum class Status { Ok, WantMore, Closed, Error };

    // Plaintext pulled per SSL_read: one maximal TLS record.
    static constexpr size_t kReadChunk = 16 * 1024;

    explicit TlsSession(SSL_CTX* ctx);
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Ciphertext received from the socket (ignored once the session is Closed/Error).
    // Borrowed, not copied, when nothing is buffered: the buffer must stay valid and
    // unchanged until the next handshake() / read() / write() / shutdown(), which consume it
    // and copy only what is left over (a partial record). A second feed() before that copies.
    void feed(const uint8_t* data, size_t len);

    // Drives the handshake as far as the fed bytes allow. Ok once complete.
    Status handshake();
    bool handshakeComplete() const;

    // Appends all the plaintext the fed bytes decrypt to (completing the handshake first if
    // needed). Ok: at least one byte appended; WantMore: nothing yet.
    Status read(std::vector<uint8_t>& out);

    // Encrypts `len` bytes (one SSL_write: records of up to 16 KiB, never partial). Call after
    // the handshake is complete; before it, the call only advances the handshake and returns
    // WantMore without consuming the data.
    Status write(const uint8_t* data, size_t len);

    // Ciphertext to send.
    size_t pendingOutput() const { return out_.size(); }
    size_t takeOutput(uint8_t* dst, size_t cap) { return out_.take(dst, cap); }
    // Zero-copy alternative: send from view, then consumeOutput(bytes actually sent).
    std::span<const uint8_t> outputView() const { return out_.view(); }
    void consumeOutput(size_t n) { out_.consume(n); }

    // Queues close_notify (once; no-op before the handshake completed or after an error).
    void shutdown();

    // Why the session failed: the certificate verification error when there was one
    // ("certificate revoked", "certificate has expired", "unable to get local issuer
    // certificate", "unsuitable certificate purpose"), else OpenSSL's reason ("peer did not
    // return a certificate", "unsupported protocol", "wrong version number", ...).
    std::string lastError() const { return error_; }

    // The verified client certificate, or null. Borrowed: valid while the session lives.
    X509* peerCertificate() const;
    // The intermediates the client sent with its certificate (may be null). Borrowed.
    // On a resumed session: those its ticket carried (TicketChain.h).
    STACK_OF(X509) * peerChain() const { return peerIntermediates(ssl_.get()); }
    long verifyResult() const;            // X509_V_OK, X509_V_ERR_CERT_REVOKED, ...
    const char* protocolVersion() const;  // "TLSv1.2", "TLSv1.3"
    bool sessionReused() const;           // resumed from a session ticket
    const char* cipherName() const;       // "TLS_AES_256_GCM_SHA384"
    size_t bufferedInput() const { return in_.size() + borrowed_.size(); }
    // The client sent something towards a handshake (a silent TCP connection has not).
    bool handshakeStarted() const { return ssl_ != nullptr || bufferedInput() > 0; }
    // Gives back the memory of drained buffers (a connection gone quiet).
    void releaseIdleBuffers();
    SSL* native() const { return ssl_.get(); }

  private:
    friend struct SessionBio;

    Status classify(int ret);
    void fail(const char* fallback);
    // Creates the SSL object (at the first complete record, not at accept).
    bool createSsl();
    // Before the handshake is done, OpenSSL only ever sees whole TLS records: a client that
    // dribbles its ClientHello costs the bytes it sent, not an SSL object and OpenSSL's
    // 16 KiB record buffer (slowloris). Sets handshakeBudget_; false: nothing to do yet.
    bool admitHandshakeInput();
    // Before an SSL call: nullopt when OpenSSL may run, else what the call returns now
    // (WantMore: no complete record yet; Error: the SSL object could not be made).
    std::optional<Status> holdInput();
    // Bytes at the front of the buffered input that form complete records (kUngated when
    // the input is not TLS records at all: OpenSSL then refuses it).
    size_t completeRecordBytes() const;
    uint8_t inputAt(size_t i) const;  // i-th buffered input byte (in_, then borrowed_)
    // Copies what is left of the borrowed input into in_ (end of every SSL call).
    void keepBorrowedRest();
    // Takes up to len buffered ciphertext bytes for OpenSSL (in_ first, then borrowed_).
    size_t takeInput(uint8_t* dst, size_t len);

    static constexpr size_t kRecordHeader = 5;
    static constexpr size_t kMaxRecordBody = 16384 + 2048;  // TLS 1.2 ciphertext bound
    static constexpr size_t kUngated = SIZE_MAX;

    SslCtxPtr ctx_;  // until the SSL object exists
    SslPtr ssl_;
    size_t handshakeBudget_ = kUngated;  // input OpenSSL may take in this call
    std::span<const uint8_t> borrowed_;  // fed, not yet read: the caller's buffer
    ByteQueue in_;
    ByteQueue out_;
    std::string error_;
    bool failed_ = false;
    bool closed_ = false;
};

}  // namespace moat::tls
