#pragma once
// The replay cache of `integrity.rules` with `max_age` (CONTRACT.md §3 "Signed messages"):
// within max_age, a signature already seen is refused.
//
// max_age alone lets a captured message be sent again for as long as its timestamp is fresh;
// remembering each accepted signature until its timestamp goes stale closes that window, and
// the timestamp is what bounds how long an entry must be kept.
//
// One cache per replica (shared by every worker, behind a mutex: it is consulted only after a
// signature verified, which costs far more than the lock), surviving reloads so a SIGHUP does
// not reopen the window. Keyed by the signature alone: a signature is unique to (key, signed
// bytes), so the same signature from another identity sharing the key is a replay too.
//
// Memory is bounded: at most `capacity` live entries in all, at most `perIdentity` of them
// recorded by one identity. A full cache refuses new signatures (fail closed) rather than
// forgetting live ones (which would make them replayable again); the per-identity share keeps
// one identity that signs faster than its share from refusing everyone else's messages.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace moat::integrity {

class ReplayCache {
  public:
    static constexpr size_t kDefaultCapacity = 65536;    // ~10 MiB at most
    static constexpr size_t kDefaultPerIdentity = 8192;  // 27 signed messages/s over 5 min

    explicit ReplayCache(size_t capacity = kDefaultCapacity,
                         size_t perIdentity = kDefaultPerIdentity);

    // The one cache of this process (the gateway's snapshots share it across reloads).
    static std::shared_ptr<ReplayCache> processWide();

    enum class Result : uint8_t { Fresh, Replayed, Full };

    // Records `signature`, accepted at `now` (Unix seconds) and acceptable until `expiresAt`
    // inclusive, for `identity`. Replayed when the same signature is still remembered.
    Result admit(std::span<const uint8_t> signature, std::string_view identity, int64_t now,
                 int64_t expiresAt);

    size_t size() const;

  private:
    // The first 16 bytes of a signature: a valid HMAC-SHA256 is pseudorandom, an Ed25519
    // signature starts with R, fixed by the signed bytes; 128 bits never collide by chance.
    using Digest = std::array<uint8_t, 16>;
    struct Entry {
        int64_t expiresAt;
        std::map<std::string, size_t, std::less<>>::iterator
            owner;  // its identity's count (stable)
    };
    void purge(int64_t now);  // caller holds mu_

    const size_t capacity_;
    const size_t perIdentity_;
    mutable std::mutex mu_;
    // Ordered containers: lookups stay O(log n) whatever digests clients manage to produce.
    std::map<Digest, Entry> seen_;
    std::set<std::pair<int64_t, Digest>> byExpiry_;
    std::map<std::string, size_t, std::less<>> perIdentityCount_;
};

}  // namespace moat::integrity
