#pragma once
// Session-ticket keys with scheduled rotation (RFC 5077 tickets in TLS 1.2, stateless PSK
// tickets in TLS 1.3 — OpenSSL encrypts both with these keys).
//
// Why not OpenSSL's built-in key: it is generated once per SSL_CTX and never changes, so a
// gateway that runs for months would protect every resumable session with one key, which
// defeats forward secrecy for resumed sessions. Here:
//   - a new key becomes current every `rotation` (checked lazily when a ticket is issued or
//     presented, no timer);
//   - the previous key still decrypts, and a ticket under it is renewed (a fresh ticket under
//     the current key is sent), so a client that reconnects regularly never loses resumption;
//   - anything older is refused (full handshake). A ticket therefore lives between `rotation`
//     and 2 x `rotation`; TlsContext advertises `rotation` as the ticket lifetime.
//   - keys are random, in memory only, never shared across contexts: a reload (SIGHUP) builds
//     a new TlsContext and so invalidates every ticket. That is deliberate: a resumed session
//     skips certificate verification, so a client whose certificate the reload revoked must
//     not be able to resume with a ticket from before it.
// Thread-safe: workers share one SSL_CTX and so one key ring; the lock is taken only on
// handshakes that issue or present a ticket, never on the data path.

#include <openssl/evp.h>

#include <chrono>
#include <cstdint>
#include <mutex>

namespace moat::tls {

class TicketKeys {
  public:
    using Clock = std::chrono::steady_clock;

    explicit TicketKeys(Clock::duration rotation);
    ~TicketKeys();
    TicketKeys(const TicketKeys&) = delete;
    TicketKeys& operator=(const TicketKeys&) = delete;

    // False if the random generator failed while creating the first key.
    bool valid() const { return valid_; }

    // Forces a rotation now (tests; an operator command could use it too).
    void rotate();

    // Implements SSL_CTX_set_tlsext_ticket_key_evp_cb. Returns 1 (ok), 2 (ok, renew the
    // ticket), 0 (unknown or expired key: full handshake) or -1 (internal error).
    int onTicket(unsigned char keyName[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                 EVP_MAC_CTX* mac, bool encrypt);

  private:
    struct Key {
        unsigned char name[16];
        unsigned char aesKey[32];
        unsigned char hmacKey[32];
        Clock::time_point created;
    };

    bool generate(Key& key);
    void rotateLocked(Clock::time_point now);

    const Clock::duration rotation_;
    std::mutex mutex_;
    Key current_{};
    Key previous_{};
    bool hasPrevious_ = false;
    bool valid_ = false;
};

}  // namespace moat::tls
