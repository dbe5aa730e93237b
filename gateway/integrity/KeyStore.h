#pragma once
// The integrity rules of one configuration snapshot and their keys.
//
// Keys are never read per message. Fixed key paths are loaded when the snapshot is built (a
// bad key fails the start / the reload). Per-identity paths (`%u`) cannot be enumerated up
// front, so an identity's keys are read once, when that client is authenticated, and cached
// here so reconnects and other connections of the same identity reuse them. A reload builds
// a new KeyStore, which drops the cache: SIGHUP is how a rotated key file takes effect.
// Only successful loads are cached (bounded by the key files on disk, not by what clients
// claim); a missing key file is looked up again at the next connect.

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/integrity/Checker.h"

namespace moat::integrity {

class KeyStore : public std::enable_shared_from_this<KeyStore> {
  public:
    // Loads every key path without %u. Errors are "RULE-NAME: message". `replay`: the replay
    // cache of the rules with max_age; the gateway passes ReplayCache::processWide() so it
    // outlives reloads (null: a cache of this KeyStore's own).
    static std::shared_ptr<KeyStore> build(std::vector<RuleSpec> rules,
                                           std::vector<std::string>& errors,
                                           std::shared_ptr<ReplayCache> replay = nullptr);

    // The checker of one authenticated client, its %u keys loaded (or taken from the cache).
    // `problems` gets one line per rule whose key is unusable for this identity (publishes
    // under that rule are then refused with "no key").
    std::shared_ptr<Checker> checkerFor(std::string_view identity, std::string_view clientId,
                                        std::vector<std::string>& problems,
                                        Checker::Clock clock = {}) const;

    const std::vector<RuleSpec>& rules() const { return rules_; }
    size_t cachedKeys() const;

    // The key path of `rule` for `identity`, or "" when the identity cannot safely be part of
    // a file name (empty, ".", "..", or holding '/', '\\' or NUL).
    static std::string keyPathFor(const RuleSpec& rule, std::string_view identity);

  private:
    std::vector<RuleSpec> rules_;
    std::vector<std::shared_ptr<const Key>> fixedKeys_;    // per rule; null for %u paths
    std::shared_ptr<const policy::TopicTrie> sharedTrie_;  // null when a filter has a placeholder
    std::shared_ptr<ReplayCache> replay_;

    mutable std::mutex mu_;  // checkerFor runs on every worker
    mutable std::unordered_map<std::string, std::shared_ptr<const Key>> cache_;  // alg|path
};

}  // namespace moat::integrity
