#include "gateway/integrity/KeyStore.h"

#include "policy/RuleFilter.h"
#include "policy/TopicMatch.h"

namespace moat::integrity {

namespace {

bool hasIdentityPlaceholder(const std::string& path) {
    return path.find("%u") != std::string::npos;
}

}  // namespace

std::string KeyStore::keyPathFor(const RuleSpec& rule, std::string_view identity) {
    if (!hasIdentityPlaceholder(rule.keyPath)) return rule.keyPath;
    if (identity.empty() || identity == "." || identity == ".." ||
        identity.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos)
        return "";
    std::string out;
    const std::string& p = rule.keyPath;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '%' && i + 1 < p.size() && p[i + 1] == 'u') {
            out.append(identity);
            ++i;
        } else {
            out.push_back(p[i]);
        }
    }
    return out;
}

std::shared_ptr<KeyStore> KeyStore::build(std::vector<RuleSpec> rules,
                                          std::vector<std::string>& errors,
                                          std::shared_ptr<ReplayCache> replay) {
    auto store = std::make_shared<KeyStore>();
    store->rules_ = std::move(rules);
    store->replay_ = replay ? std::move(replay) : std::make_shared<ReplayCache>();
    bool placeholders = false;
    auto trie = std::make_shared<policy::TopicTrie>();
    for (uint32_t i = 0; i < store->rules_.size(); ++i) {
        const RuleSpec& r = store->rules_[i];
        std::shared_ptr<const Key> key;
        if (!hasIdentityPlaceholder(r.keyPath)) {
            std::string err;
            key = Key::load(r.algorithm, r.keyPath, err);
            if (!key) errors.push_back(r.name + ": " + err);
        }
        store->fixedKeys_.push_back(std::move(key));
        for (const auto& f : r.topics) {
            if (policy::hasPlaceholder(f))
                placeholders = true;
            else if (policy::isValidTopicFilter(f))
                trie->insert(f, i);
        }
    }
    if (!placeholders) store->sharedTrie_ = std::move(trie);
    return store;
}

std::shared_ptr<Checker> KeyStore::checkerFor(std::string_view identity, std::string_view clientId,
                                              std::vector<std::string>& problems,
                                              Checker::Clock clock) const {
    std::vector<BoundRule> bound;
    bound.reserve(rules_.size());
    for (size_t i = 0; i < rules_.size(); ++i) {
        const RuleSpec& r = rules_[i];
        BoundRule b{&r, fixedKeys_[i]};
        if (!b.key) {
            const std::string path = keyPathFor(r, identity);
            if (path.empty()) {
                problems.push_back(r.name + ": identity cannot name a key file");
            } else {
                const std::string cacheKey = std::string(algorithmName(r.algorithm)) + "|" + path;
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    auto it = cache_.find(cacheKey);
                    if (it != cache_.end()) b.key = it->second;
                }
                if (!b.key) {
                    // Read outside the lock: another worker may race us to the same file;
                    // both results are equal, the first one stays.
                    std::string err;
                    b.key = Key::load(r.algorithm, path, err);
                    if (b.key) {
                        std::lock_guard<std::mutex> lock(mu_);
                        b.key = cache_.emplace(cacheKey, b.key).first->second;
                    } else {
                        problems.push_back(r.name + ": " + err);
                    }
                }
            }
        }
        bound.push_back(std::move(b));
    }
    return std::make_shared<Checker>(std::move(bound), sharedTrie_, identity, clientId,
                                     std::move(clock), shared_from_this(), replay_);
}

size_t KeyStore::cachedKeys() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_.size();
}

}  // namespace moat::integrity
