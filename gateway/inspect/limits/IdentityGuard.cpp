#include "gateway/inspect/limits/IdentityGuard.h"

#include <algorithm>

namespace moat::inspect {

using std::chrono::milliseconds;

namespace {
// Past this many failures in the window the delay is at its cap anyway: older ones are
// dropped, so an identity's record stays small however hard it is attacked.
constexpr size_t kMaxFailures = 64;
}  // namespace

void IdentityGuard::prune(Failures& f, SteadyTime now) const {
    const SteadyTime cutoff = now - config_.window;
    while (!f.empty() && f.front() <= cutoff) f.pop_front();
}

milliseconds IdentityGuard::delayFrom(size_t failures) const {
    if (config_.threshold == 0 || failures < config_.threshold) return milliseconds(0);
    milliseconds d = config_.baseDelay;
    for (size_t i = config_.threshold; i < failures && d < config_.maxDelay; ++i) d *= 2;
    return std::min(d, config_.maxDelay);
}

bool IdentityGuard::trusted(std::string_view identity, std::string_view ip, SteadyTime now) const {
    auto it = trust_.find(identity);
    if (it == trust_.end()) return false;
    for (const auto& a : it->second) {
        if (a.ip == ip) return now - a.lastLogin < config_.trustFor;
    }
    return false;
}

size_t IdentityGuard::failuresInWindow(std::string_view identity, SteadyTime now) {
    auto it = failures_.find(identity);
    if (it == failures_.end()) return 0;
    prune(it->second, now);
    return it->second.size();
}

milliseconds IdentityGuard::delayFor(std::string_view identity, std::string_view ip,
                                     SteadyTime now) {
    if (trusted(identity, ip, now)) return milliseconds(0);
    return delayFrom(failuresInWindow(identity, now));
}

IdentityGuard::Charge IdentityGuard::chargeCheck(std::string_view identity, std::string_view ip,
                                                 SteadyTime now) {
    Charge c;
    if (!trackable(identity)) return c;
    // The delay comes from the failures before this check: the check itself is not one yet.
    c.delay = delayFor(identity, ip, now);
    auto it = failures_.find(identity);
    if (it == failures_.end()) {
        if (failures_.size() >= config_.maxIdentities) {
            sweep(now);
            // Full of identities under attack: this one is not tracked (its address still is,
            // by the ban table). Nobody is locked out by a full table.
            if (failures_.size() >= config_.maxIdentities) return c;
        }
        it = failures_.try_emplace(std::string(identity)).first;
    }
    if (it->second.size() >= kMaxFailures) it->second.pop_front();
    it->second.push_back(now);
    c.chargedAt = now;
    c.charged = true;
    return c;
}

void IdentityGuard::withdraw(std::string_view identity, SteadyTime chargedAt) {
    auto it = failures_.find(identity);
    if (it == failures_.end()) return;
    auto& f = it->second;
    auto pos = std::find(f.begin(), f.end(), chargedAt);
    if (pos != f.end()) f.erase(pos);
    if (f.empty()) failures_.erase(it);
}

void IdentityGuard::notePressure(std::string_view identity, SteadyTime now) {
    if (!trackable(identity)) return;
    if (failures_.find(identity) == failures_.end() && failures_.size() >= config_.maxIdentities)
        return;
    auto& f = failures_[std::string(identity)];
    prune(f, now);
    while (f.size() < config_.threshold && f.size() < kMaxFailures) f.push_back(now);
}

void IdentityGuard::loggedIn(std::string_view identity, std::string_view ip, SteadyTime now) {
    if (!trackable(identity) || ip.empty()) return;
    auto it = trust_.find(identity);
    if (it == trust_.end()) {
        if (trust_.size() >= config_.maxIdentities) {
            sweep(now);
            if (trust_.size() >= config_.maxIdentities) {
                // Only real logins add entries, so this takes that many genuine identities:
                // forget the one whose latest login is the oldest.
                auto oldest = trust_.begin();
                auto latest = [](const std::vector<TrustedAddress>& v) {
                    SteadyTime t{};
                    for (const auto& a : v) t = std::max(t, a.lastLogin);
                    return t;
                };
                for (auto j = trust_.begin(); j != trust_.end(); ++j) {
                    if (latest(j->second) < latest(oldest->second)) oldest = j;
                }
                trust_.erase(oldest);
            }
        }
        it = trust_.try_emplace(std::string(identity)).first;
    }
    auto& list = it->second;
    for (auto& a : list) {
        if (a.ip == ip) {
            a.lastLogin = now;
            return;
        }
    }
    if (list.size() >= kMaxTrustedAddresses) {
        auto lru = std::min_element(list.begin(), list.end(), [](const auto& a, const auto& b) {
            return a.lastLogin < b.lastLogin;
        });
        list.erase(lru);
    }
    list.push_back({std::string(ip), now});
}

void IdentityGuard::sweep(SteadyTime now) {
    for (auto it = failures_.begin(); it != failures_.end();) {
        prune(it->second, now);
        it = it->second.empty() ? failures_.erase(it) : std::next(it);
    }
    for (auto it = trust_.begin(); it != trust_.end();) {
        auto& list = it->second;
        list.erase(std::remove_if(list.begin(), list.end(),
                                  [&](const TrustedAddress& a) {
                                      return now - a.lastLogin >= config_.trustFor;
                                  }),
                   list.end());
        it = list.empty() ? trust_.erase(it) : std::next(it);
    }
}

}  // namespace moat::inspect
