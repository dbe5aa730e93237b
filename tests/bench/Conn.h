#pragma once
// One client connection: a non-blocking TCP socket, optionally wrapped in TLS (OpenSSL memory
// of the SSL object is owned here). Reads and writes wait with poll(), so a TLS 1.3
// post-handshake message (session ticket) can never block a reader the way SSL_read on a
// blocking socket can, and one thread can interleave reads and timed writes.

#include <openssl/ssl.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moat::bench {

struct TlsFiles {
    std::string ca;    // trust anchor for the server certificate
    std::string cert;  // client certificate (mTLS); empty: none
    std::string key;
};

struct SslCtxDeleter {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// A client context verifying the server against files.ca, presenting files.cert if set.
// Session caching is off: every connection performs a full handshake unless the caller
// offers a session itself (Endpoint::resume).
SslCtxPtr makeClientContext(const TlsFiles& files, std::string& error);

struct Endpoint {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    SSL_CTX* tls = nullptr;  // null: plaintext
    // Local address to connect from (IPv4 literal), empty: the kernel's choice. The flood
    // tool spreads clients over 127.0.0.0/8 so per-IP limits see many devices.
    std::string source;
    // A session to offer for resumption (TLS 1.3 ticket / TLS 1.2 session), null: none.
    // Not owned; SSL_set_session takes its own reference.
    SSL_SESSION* resume = nullptr;
    // A client certificate + key for this connection only (overrides the context's), null:
    // the context's. Not owned. The handshake bench gives each connection its own device.
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
    // MQTT over WebSocket: the request path to upgrade (e.g. "/mqtt"), empty: raw MQTT. Then
    // writes leave in masked binary frames and reads return the frames' payload only.
    std::string wsPath;
};

// A fleet of device identities (tests/bench/gen_fleet.py): one PEM file holding, per device,
// its certificate followed by its private key.
struct Device {
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
};
class Fleet {
  public:
    Fleet() = default;
    ~Fleet();
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;
    // False and error set when the file is unreadable or a certificate lacks its key.
    bool load(const std::string& path, std::string& error);
    size_t size() const { return devices_.size(); }
    const Device& operator[](size_t i) const { return devices_[i]; }

  private:
    std::vector<Device> devices_;
};

// Binds `fd` to the IPv4 literal `source` (port chosen at connect time, so one source address
// is not limited to ~28k ports across all destinations). False and error set on failure.
bool bindSource(int fd, const std::string& source, std::string& error);

class Conn {
  public:
    // TCP connect + TLS handshake (when ep.tls), bounded by timeoutMs. Null on failure.
    static std::unique_ptr<Conn> open(const Endpoint& ep, int timeoutMs, std::string& error);
    // Wraps an accepted plaintext socket (the sink's side).
    static std::unique_ptr<Conn> adopt(int fd);
    ~Conn();
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    // Writes every byte (one TLS record per call up to 16 KiB; WebSocket: one frame). False
    // on error.
    bool writeAll(const void* data, size_t n);
    // Writes n bytes as one TLS record per `recordLen` bytes (one MQTT packet per record, as
    // a device sends them), all the records in one write(2) where the socket takes them: the
    // shape of issue 26's clients. Plaintext: writeAll. False on error.
    bool writeRecords(const void* data, size_t n, size_t recordLen);
    // Reads what is available, waiting up to timeoutMs (-1: forever) for the first byte.
    // >0 bytes read, 0 timeout, -1 EOF or error (WebSocket: a close frame is EOF).
    ssize_t read(void* buf, size_t cap, int timeoutMs);
    // Sends a TLS close_notify (when TLS) and closes the socket.
    void close();
    int fd() const { return fd_; }
    // After the handshake: whether the offered session was accepted, and the session to offer
    // next time (new reference, caller frees; null when plaintext or nothing resumable yet —
    // TLS 1.3 tickets arrive after the handshake, so ask after the first reply).
    bool resumed() const { return ssl_ && SSL_session_reused(ssl_) == 1; }
    SSL_SESSION* resumableSession() const;

  private:
    Conn(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
    bool waitFor(short events, int timeoutMs);
    bool sendRaw(const uint8_t* p, size_t n);
    bool rawWriteAll(const void* data, size_t n);
    ssize_t rawRead(void* buf, size_t cap, int timeoutMs);
    // The HTTP upgrade (after TLS); false with error set when refused or timed out.
    bool upgrade(const Endpoint& ep, int timeoutMs, std::string& error);
    int fd_;
    SSL* ssl_;
    bool ws_ = false;
    std::string wsIn_;          // server bytes not yet unframed
    uint64_t wsFrameLeft_ = 0;  // payload bytes of the current server frame still to come
    bool wsData_ = false;       // the current frame is binary / continuation
    bool wsClosed_ = false;
    std::string wsOut_;  // one outgoing frame
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t raiseFileLimit();

}  // namespace moat::bench
