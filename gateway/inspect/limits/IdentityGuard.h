#pragma once
// Identity-level protection against password guessing (CONTRACT.md §3 "Bans and
// identities"). Bans are per source address (BanTable); an identity is never banned, because
// a CONNECT username is only a claim: anyone could fail on purpose as `alice` and lock her out.
//
// Instead, failures charged to an identity (a claimed username) make further checks for it
// *slower* from addresses that have not recently logged in as it:
//
//   - a successful login of `identity` from `ip` makes that address trusted for the identity
//     for `trustFor` (default 7 days, refreshed by every login; at most kMaxTrustedAddresses
//     per identity, least recently used forgotten first);
//   - from a trusted address a check is never delayed and never refused;
//   - from any other address, once the identity has `threshold` or more failures within
//     `window` (bans.auth_failures / bans.window), each check waits
//     min(baseDelay * 2^(failures - threshold), maxDelay) before it runs;
//   - live sessions are never touched.
//
// A failure is charged when a check is started (chargeCheck) and withdrawn if that check
// succeeds (withdraw), so checks that never finish still count.
//
// Pure bookkeeping with an injected clock; memory is bounded (maxIdentities per table,
// identities longer than maxIdentityLength are not tracked). Not synchronised: the gateway
// wraps it in a mutex (SharedIdentityGuard).

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/inspect/limits/KeyedHash.h"
#include "gateway/inspect/limits/TokenBucket.h"

namespace moat::inspect {

struct IdentityGuardConfig {
    uint32_t threshold = 5;  // bans.auth_failures; 0 = never delay
    std::chrono::milliseconds window{60000};
    std::chrono::milliseconds trustFor{std::chrono::hours(24 * 7)};
    std::chrono::milliseconds baseDelay{1000};
    std::chrono::milliseconds maxDelay{5000};  // keep it below handshake_timeout
    size_t maxIdentities = 100000;             // per table (failures, trusted addresses)
    size_t maxIdentityLength = 1024;
};

class IdentityGuard {
  public:
    static constexpr size_t kMaxTrustedAddresses = 16;

    explicit IdentityGuard(IdentityGuardConfig config = {}) : config_(config) {}

    struct Charge {
        std::chrono::milliseconds delay{0};  // wait this long before running the check
        SteadyTime chargedAt{};              // what withdraw() needs
        bool charged = false;                // false: not tracked (empty / too long / full)
    };
    // A check of `identity`'s password from `ip` is about to start: charges one failure and
    // says how long the check must wait first.
    Charge chargeCheck(std::string_view identity, std::string_view ip, SteadyTime now);
    // The check charged at `chargedAt` succeeded: the failure is withdrawn.
    void withdraw(std::string_view identity, SteadyTime chargedAt);
    // A failure found elsewhere (another replica's shared count crossed the threshold):
    // the identity counts as having `threshold` failures now.
    void notePressure(std::string_view identity, SteadyTime now);
    // `identity` logged in from `ip` (any factor): that address is trusted for it.
    void loggedIn(std::string_view identity, std::string_view ip, SteadyTime now);

    // Without charging anything: the delay a check would get now.
    std::chrono::milliseconds delayFor(std::string_view identity, std::string_view ip,
                                       SteadyTime now);
    bool trusted(std::string_view identity, std::string_view ip, SteadyTime now) const;
    size_t failuresInWindow(std::string_view identity, SteadyTime now);

    void sweep(SteadyTime now);
    void updateConfig(const IdentityGuardConfig& config) { config_ = config; }
    size_t trackedIdentities() const { return failures_.size() + trust_.size(); }

  private:
    struct TrustedAddress {
        std::string ip;
        SteadyTime lastLogin;
    };
    using Failures = std::deque<SteadyTime>;  // oldest first, bounded by kMaxFailures

    void prune(Failures& f, SteadyTime now) const;
    std::chrono::milliseconds delayFrom(size_t failures) const;
    bool trackable(std::string_view identity) const {
        return !identity.empty() && identity.size() <= config_.maxIdentityLength;
    }

    IdentityGuardConfig config_;
    std::unordered_map<std::string, Failures, KeyedHash, std::equal_to<>> failures_;
    std::unordered_map<std::string, std::vector<TrustedAddress>, KeyedHash, std::equal_to<>> trust_;
};

// IdentityGuard behind a mutex, shared by the worker and password-check threads.
class SharedIdentityGuard {
  public:
    explicit SharedIdentityGuard(IdentityGuardConfig config = {}) : guard_(config) {}
    IdentityGuard::Charge chargeCheck(std::string_view identity, std::string_view ip,
                                      SteadyTime now) {
        std::lock_guard lock(mutex_);
        return guard_.chargeCheck(identity, ip, now);
    }
    void withdraw(std::string_view identity, SteadyTime chargedAt) {
        std::lock_guard lock(mutex_);
        guard_.withdraw(identity, chargedAt);
    }
    void notePressure(std::string_view identity, SteadyTime now) {
        std::lock_guard lock(mutex_);
        guard_.notePressure(identity, now);
    }
    void loggedIn(std::string_view identity, std::string_view ip, SteadyTime now) {
        std::lock_guard lock(mutex_);
        guard_.loggedIn(identity, ip, now);
    }
    void sweep(SteadyTime now) {
        std::lock_guard lock(mutex_);
        guard_.sweep(now);
    }
    void updateConfig(const IdentityGuardConfig& config) {
        std::lock_guard lock(mutex_);
        guard_.updateConfig(config);
    }

  private:
    std::mutex mutex_;
    IdentityGuard guard_;
};

}  // namespace moat::inspect
