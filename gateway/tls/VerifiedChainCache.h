#pragma once
// A bounded cache of client-certificate chains that passed full verification, so a fleet of
// devices reconnecting without a session ticket skips the repeated X509_verify_cert (chain
// building, signature checks and CRL look-ups: most of a full handshake's server CPU besides
// the key exchange itself).
//
// A cache on the authentication path, so it is deliberately narrow:
//   - key: the trust generation (a number unique to one TlsContext, i.e. one CA bundle + CRL
//     file + verification flags as loaded; every reload makes a new one) AND a SHA-256 over
//     the verification parameters and the DER of every certificate the client sent (leaf
//     first). Another CA bundle, another CRL, another intermediate or another leaf can never
//     hit an entry made under different inputs;
//   - successes only: a refused chain is never stored, so a refusal is always re-evaluated;
//   - each entry is valid in [notBefore, expires): expires is the earliest notAfter of the
//     verified chain and, with CRL checking, the earliest nextUpdate of the CRLs; notBefore the
//     latest notBefore / CRL lastUpdate (a clock stepped back re-verifies);
//   - bounded: least recently used entries go first once `capacity` is reached.
// Proof of possession (the client's CertificateVerify signature) is not cached: OpenSSL checks
// it on every handshake after the chain callback (see CachedVerify.h).
//
// Thread-safe: one mutex. The gateway's workers share a listener's SSL_CTX and a device
// reconnects on whichever worker accepts it, so one shared cache hits on any worker and holds
// each chain once; the critical section is a hash look-up and a list splice (well under a
// microsecond) against a full handshake's ~1 ms, so the lock is never contended in practice.
// Pure: time is a parameter (tests use a fake clock).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>

namespace moat::tls {

class VerifiedChainCache {
  public:
    using Clock = std::chrono::system_clock;
    using Digest = std::array<uint8_t, 32>;  // SHA-256
    struct Key {
        uint64_t generation = 0;
        Digest chain{};
        bool operator==(const Key& o) const {
            return generation == o.generation && chain == o.chain;
        }
    };
    struct Stats {
        uint64_t hits = 0, misses = 0, inserts = 0, evictions = 0, expired = 0;
        size_t size = 0;
    };

    // The gateway's cache: 32,768 chains at most (~150 bytes each, so ≤ ~5 MB), shared by
    // every listener and every reload (generations keep them apart).
    static constexpr size_t kProcessCapacity = 32768;
    static VerifiedChainCache& processWide();

    explicit VerifiedChainCache(size_t capacity);
    VerifiedChainCache(const VerifiedChainCache&) = delete;
    VerifiedChainCache& operator=(const VerifiedChainCache&) = delete;

    // True when `key` was stored and `now` is inside its validity window (an entry outside it
    // is dropped). A hit makes the entry the most recently used.
    bool lookup(const Key& key, Clock::time_point now);
    // Records a successful verification valid in [notBefore, expires). Ignored when the
    // window does not contain `now` or capacity is 0.
    void insert(const Key& key, Clock::time_point notBefore, Clock::time_point expires,
                Clock::time_point now);
    // Drops every entry of `generation` (its TlsContext is gone: nothing can hit them again).
    void dropGeneration(uint64_t generation);
    void clear();

    Stats stats() const;
    size_t capacity() const { return capacity_; }

    // A process-unique trust generation for a new TlsContext (never 0).
    static uint64_t nextGeneration();

  private:
    struct KeyHash {
        size_t operator()(const Key& k) const;
    };
    struct Entry {
        Key key;
        Clock::time_point notBefore, expires;
    };
    using List = std::list<Entry>;  // front = most recently used

    const size_t capacity_;
    mutable std::mutex mu_;
    List lru_;
    std::unordered_map<Key, List::iterator, KeyHash> index_;
    Stats stats_;
};

}  // namespace moat::tls
