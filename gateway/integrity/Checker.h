#pragma once
// The integrity check of one connection: which rule (if any) a PUBLISH topic falls under, and
// whether the message carries a valid, fresh signature made with the publisher's key.
//
// Built when the client is authenticated (KeyStore::checkerFor), with the identity's keys
// already loaded; the data path only matches the topic against a precompiled trie (no
// allocation, nothing at all for topics outside every rule) and verifies.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/integrity/ReplayCache.h"
#include "gateway/integrity/SignedPublish.h"
#include "policy/TopicTrie.h"

namespace moat::integrity {

struct RuleSpec {
    std::vector<std::string> topics;  // filters, may hold %u / %c
    Algorithm algorithm = Algorithm::HmacSha256;
    std::string keyPath;  // absolute, may hold %u
    std::optional<std::chrono::milliseconds> maxAge;
    bool disconnect = false;  // on_invalid
    std::string name;         // "integrity.rules[0]", the audit log's `rule`
};

// A rule with the key it verifies against for this connection (null: none usable).
struct BoundRule {
    const RuleSpec* spec = nullptr;
    std::shared_ptr<const Key> key;
};

class Checker {
  public:
    using Clock = std::function<int64_t()>;  // Unix seconds
    static constexpr uint32_t kNoRule = policy::TopicTrie::kNoRule;

    // `shared`: the trie of the rules' filters when none has a placeholder (built once per
    // snapshot); otherwise the filters are expanded for this identity / client id here.
    // `keepAlive` holds whatever owns the RuleSpecs. `replay`: where signatures accepted under
    // a rule with max_age are remembered (null: a private cache, for tests).
    Checker(std::vector<BoundRule> rules, std::shared_ptr<const policy::TopicTrie> shared,
            std::string_view identity, std::string_view clientId, Clock clock,
            std::shared_ptr<const void> keepAlive, std::shared_ptr<ReplayCache> replay = nullptr);

    struct Outcome {
        uint32_t rule = kNoRule;  // kNoRule: the topic is under no rule, forward as is
        Failure failure = Failure::None;
        size_t trailer = 0;  // v3: bytes to strip from the end of the payload before forwarding
        bool matched() const { return rule != kNoRule; }
    };

    // `properties`: the v5 properties block (ignored for v3). `remember`: record a signature
    // accepted under a rule with max_age in the replay cache, refusing one already there
    // (false for wills: a client reconnecting with the same signed will is not a replay, and
    // the broker publishes a will at most once per connection).
    Outcome check(std::string_view topic, std::string_view payload,
                  std::span<const uint8_t> properties, bool v5, bool remember = true);

    const RuleSpec& rule(uint32_t i) const { return *rules_[i].spec; }
    size_t ruleCount() const { return rules_.size(); }

  private:
    std::vector<BoundRule> rules_;
    std::shared_ptr<const policy::TopicTrie> trie_;
    Clock clock_;
    std::shared_ptr<const void> keepAlive_;
    std::shared_ptr<ReplayCache> replay_;
    std::string identity_;
    Verifier verifier_;
    std::array<uint8_t, kEd25519Size> sigBuf_{};
};

int64_t systemUnixSeconds();

}  // namespace moat::integrity
