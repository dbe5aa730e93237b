#pragma once
// Client-id ownership (auth.protect_client_ids, CONTRACT §3): a client id belongs to the
// identity holding it, while connected and, after its last connection ends, for
// min(the session's effective expiry, session_owner_ttl). Another identity's CONNECT with that
// id is refused (v5 0x85 / v3 0x02) and the owner is left alone: without this, any identity
// could knock a device offline and take over its persistent session by reusing its client id
// (the class of Mosquitto issue #3553). The same identity may always take its own id over.
//
// Pure and single-threaded, driven by a caller-supplied clock; the gateway keeps one table per
// process behind a mutex (a claim and a release per connection, never per packet), so the
// SO_REUSEPORT workers share it. Owners learnt from other replicas (cluster Redis) are
// adopted with the time they have left.
//
// Expiry is computed from the release time, the session expiry and the TTL at each lookup, so
// a reload that changes session_owner_ttl applies to ids already held.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moat::inspect {

class OwnershipTable {
  public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;
    using Millis = std::chrono::milliseconds;
    // A session that never expires (v3 clean session 0, v5 Session Expiry 0xFFFFFFFF).
    static constexpr uint32_t kNeverExpires = 0xFFFFFFFF;
    static constexpr size_t kDefaultMaxEntries = 1'000'000;

    explicit OwnershipTable(Millis ttl, size_t maxEntries = kDefaultMaxEntries)
        : ttl_(ttl), maxEntries_(maxEntries) {}

    struct Claim {
        bool granted = false;
        std::string owner;  // refused: the identity holding the id
        // Granted to the identity that held the id after its last connection: the
        // subscriptions its stored session held then (see release).
        std::vector<std::string> subscriptions;
    };
    // A CONNECT of `identity` with `clientId` (after authentication). Granted when the id is
    // free, its hold has expired, or `identity` holds it: the id is then held, connected.
    Claim claim(std::string_view clientId, std::string_view identity, TimePoint now);

    // A connection that claimed `clientId` ended. `sessionExpirySeconds`: the session's
    // effective expiry (v5 as last set, including by DISCONNECT; v3: 0 for clean session,
    // kNeverExpires otherwise); nullopt: the broker never accepted this connection, so the id
    // keeps the hold it had before it. The hold starts when the last connection of the holder
    // ends.
    // `subscriptions`: what the broker holds for the session now (handed to the next claim of
    // the same identity while the hold lasts; max_subscriptions counts them on resume).
    void release(std::string_view clientId, std::string_view identity,
                 std::optional<uint32_t> sessionExpirySeconds, TimePoint now,
                 std::vector<std::string> subscriptions = {});

    // Another replica's owner (cluster): held by `identity` for `remaining` (0: released).
    // A local connected holder of another identity is kept (the broker settles the race).
    void adopt(std::string_view clientId, std::string_view identity, Millis remaining,
               TimePoint now);

    // Operator: forget the owner of `clientId` (its live connections are not touched, but it no
    // longer holds the id once they end). False when the id was not held.
    bool forceRelease(std::string_view clientId);

    // session_owner_ttl changed (reload).
    void setTtl(Millis ttl) { ttl_ = ttl; }
    Millis ttl() const { return ttl_; }

    struct Owner {
        std::string clientId;
        std::string identity;
        uint32_t connections = 0;  // live local connections (0: held after it left)
        Millis remaining{0};       // connections == 0: how long the hold lasts
        bool remote = false;       // learnt from another replica
    };
    std::vector<Owner> list(TimePoint now) const;
    // Who holds `clientId` now (nullopt: nobody).
    std::optional<Owner> owner(std::string_view clientId, TimePoint now) const;
    // Time a hold (connected or not) has left, for sharing: connected = the TTL (an upper bound:
    // a replica that crashes with it connected leaves no longer hold than a persistent session).
    Millis shareableHold(std::string_view clientId, TimePoint now) const;

    // Drops expired holds; returns how many.
    size_t expire(TimePoint now);
    size_t size() const { return entries_.size(); }

  private:
    struct Entry {
        std::string identity;
        uint32_t connections = 0;
        // Released (connections == 0): the hold ends at min(releasedAt + sessionExpiry,
        // releasedAt + ttl_) for a local release, at `until` for an adopted one.
        TimePoint releasedAt{};
        uint32_t sessionExpiry = 0;
        std::optional<TimePoint> until;  // adopted holds, and "keep the prior hold" releases
        bool remote = false;
        // While connected: the hold to fall back to when the connection ends before the broker
        // accepted it (release with nullopt).
        std::optional<TimePoint> priorEnd;
        std::vector<std::string> subscriptions;  // released: the stored session's filters
    };
    // End of a released entry's hold.
    TimePoint holdEnd(const Entry& e) const;
    bool held(const Entry& e, TimePoint now) const;
    void makeRoom(TimePoint now);

    Millis ttl_;
    size_t maxEntries_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace moat::inspect
