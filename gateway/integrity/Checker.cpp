#include "gateway/integrity/Checker.h"

#include <ctime>

#include "policy/RuleFilter.h"
#include "policy/TopicMatch.h"

namespace moat::integrity {

int64_t systemUnixSeconds() {
    return int64_t(std::time(nullptr));
}

Checker::Checker(std::vector<BoundRule> rules, std::shared_ptr<const policy::TopicTrie> shared,
                 std::string_view identity, std::string_view clientId, Clock clock,
                 std::shared_ptr<const void> keepAlive, std::shared_ptr<ReplayCache> replay)
    : rules_(std::move(rules)),
      trie_(std::move(shared)),
      clock_(clock ? std::move(clock) : Clock(systemUnixSeconds)),
      keepAlive_(std::move(keepAlive)),
      replay_(replay ? std::move(replay) : std::make_shared<ReplayCache>()),
      identity_(identity) {
    if (trie_) return;
    auto trie = std::make_shared<policy::TopicTrie>();
    std::string expanded;
    for (uint32_t i = 0; i < rules_.size(); ++i) {
        for (const auto& filter : rules_[i].spec->topics) {
            // Expanded like a deny rule: an identity that cannot be spliced in safely widens
            // the rule (its level becomes `+`) instead of escaping the signature requirement.
            expanded.clear();
            if (!policy::expandRuleFilter(filter, identity, clientId, true, expanded)) continue;
            if (policy::isValidTopicFilter(expanded)) trie->insert(expanded, i);
        }
    }
    trie_ = std::move(trie);
}

Checker::Outcome Checker::check(std::string_view topic, std::string_view payload,
                                std::span<const uint8_t> properties, bool v5, bool remember) {
    Outcome out;
    if (trie_->empty()) return out;
    out.rule = trie_->firstMatch(topic);
    if (out.rule == kNoRule) return out;
    const BoundRule& rule = rules_[out.rule];
    const RuleSpec& spec = *rule.spec;

    SignatureFields fields;
    Failure f = v5 ? extractV5(properties, payload, sigBuf_, fields)
                   : extractV3(payload, spec.algorithm, spec.maxAge.has_value(), fields);
    out.trailer = fields.trailer;
    if (f == Failure::None && !rule.key) f = Failure::NoKey;
    int64_t now = 0;
    uint64_t maxAgeSeconds = 0;
    if (f == Failure::None && spec.maxAge) {
        if (!fields.timestamp) {
            f = Failure::MissingTimestamp;
        } else {
            // Symmetric window: a timestamp far in the future would stay replayable for longer.
            now = clock_();
            const uint64_t ts = *fields.timestamp;
            const uint64_t age = uint64_t(now) >= ts ? uint64_t(now) - ts : ts - uint64_t(now);
            maxAgeSeconds = uint64_t(spec.maxAge->count()) / 1000;
            if (now < 0 || age > maxAgeSeconds) f = Failure::StaleTimestamp;
        }
    }
    if (f == Failure::None &&
        !verifier_.verify(*rule.key, topic, fields.payload, fields.timestamp, fields.signature))
        f = Failure::BadSignature;
    // max_age alone leaves a captured message replayable while it is fresh: remember each
    // accepted signature until its timestamp is stale (the window is symmetric, so that is
    // ts + max_age; the timestamp passed the check, so this cannot overflow).
    if (f == Failure::None && spec.maxAge && remember) {
        const int64_t expiresAt = int64_t(*fields.timestamp + maxAgeSeconds);
        switch (replay_->admit(fields.signature, identity_, now, expiresAt)) {
            case ReplayCache::Result::Fresh:
                break;
            case ReplayCache::Result::Replayed:
                f = Failure::Replayed;
                break;
            case ReplayCache::Result::Full:
                f = Failure::ReplayCacheFull;
                break;
        }
    }
    out.failure = f;
    return out;
}

}  // namespace moat::integrity
