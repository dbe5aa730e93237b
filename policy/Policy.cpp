#include "policy/Policy.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "policy/RuleFilter.h"
#include "policy/TopicMatch.h"

namespace moat::policy {

namespace detail {

// A rule whose filter has placeholders: expanded per connection in rightsFor().
struct RuleTemplate {
    RuleList list;
    uint32_t index;
    std::string filter;
};

struct CompiledRole {
    std::string name;
    // Placeholder-free rules per list: (index in the config list, filter).
    std::vector<std::pair<uint32_t, std::string>> statics[kRuleListCount];
    std::vector<RuleTemplate> templates;  // in (list, index) order
    bool hasStaticAllow = false;
    // Per-role tries for the retain check (ids = rule index): static publish and retain rules.
    TopicTrie publishTrie;
    TopicTrie retainTrie;
    bool hasRetain = false;  // the role has a `retain:` key
    uint8_t maxQos = 2;
};

// The resolved roles of a `users:` entry or of default_roles, with the placeholder-free rules
// of all those roles merged into one trie per list: a check is one walk, whatever the number
// of roles.
struct RoleSet {
    std::vector<std::string> names;  // deduplicated, in listed order
    std::vector<const CompiledRole*> roles;
    TopicTrie tries[kRuleListCount];
    std::vector<RuleRef> refs[kRuleListCount];  // trie id -> rule
    bool hasTemplates = false;
    bool retainRestricted = false;  // some role has a `retain:` key
    uint8_t maxQos = 2;             // max over the roles (2 without roles: nothing to announce)
    std::unique_ptr<ClientRights> shared;  // the rights of every identity, when !hasTemplates
};

}  // namespace detail

namespace {

bool isAllowList(RuleList list) {
    return list == RuleList::Publish || list == RuleList::Subscribe;
}

size_t listIndex(RuleList list) {
    return static_cast<size_t>(list);
}

// The placeholder-free rules of every role of `set`, merged into one trie per list.
void buildTries(detail::RoleSet& set) {
    for (size_t l = 0; l < kRuleListCount; ++l) {
        for (uint32_t p = 0; p < set.roles.size(); ++p) {
            for (const auto& [index, filter] : set.roles[p]->statics[l]) {
                const auto id = static_cast<TopicTrie::RuleId>(set.refs[l].size());
                set.tries[l].insert(filter, id);
                set.refs[l].push_back({p, index});
            }
        }
    }
}

bool refBefore(const detail::RuleRef& a, const detail::RuleRef& b) {
    return a.rolePosition != b.rolePosition ? a.rolePosition < b.rolePosition : a.index < b.index;
}

const std::vector<std::string>& ruleList(const RoleSpec& role, RuleList list) {
    switch (list) {
        case RuleList::Publish:
            return role.publish;
        case RuleList::Subscribe:
            return role.subscribe;
        case RuleList::DenyPublish:
            return role.denyPublish;
        case RuleList::Retain:
            return role.retain;
        case RuleList::DenySubscribe:
            break;
    }
    return role.denySubscribe;
}

constexpr RuleList kAllLists[] = {RuleList::Publish, RuleList::Subscribe, RuleList::DenyPublish,
                                  RuleList::DenySubscribe, RuleList::Retain};

}  // namespace

// ---------------------------------------------------------------- ClientRights

ClientRights::ClientRights(const Policy* policy, const detail::RoleSet* roleSet)
    : policy_(policy), roleSet_(roleSet) {
    for (const detail::CompiledRole* role : roleSet->roles) {
        if (role->hasStaticAllow) hasAnyRights_ = true;
    }
    computeRetain();
}

void ClientRights::computeRetain() {
    hasAnyRetain_ = false;
    for (size_t p = 0; p < roleSet_->roles.size(); ++p) {
        const detail::CompiledRole& role = *roleSet_->roles[p];
        const detail::RoleTries* dyn = p < roleDynamic_.size() ? &roleDynamic_[p] : nullptr;
        const bool publishes = !role.publishTrie.empty() || (dyn && !dyn->publish.empty());
        const bool retains =
            !role.hasRetain || !role.retainTrie.empty() || (dyn && !dyn->retain.empty());
        if (publishes && retains) hasAnyRetain_ = true;
    }
}

bool ClientRights::retainRestricted() const {
    return roleSet_->retainRestricted;
}

uint8_t ClientRights::maxQos() const {
    return roleSet_->maxQos;
}

Decision ClientRights::checkRetain(std::string_view topic) const {
    if (!isValidTopicName(topic)) return Decision::defaultDeny();
    auto lowest = [topic](const TopicTrie& a, const TopicTrie* b) {
        TopicTrie::RuleId id = a.empty() ? TopicTrie::kNoRule : a.firstMatch(topic);
        if (b && !b->empty()) id = std::min(id, b->firstMatch(topic));
        return id;
    };
    for (size_t p = 0; p < roleSet_->roles.size(); ++p) {
        const detail::CompiledRole& role = *roleSet_->roles[p];
        const detail::RoleTries* dyn = p < roleDynamic_.size() ? &roleDynamic_[p] : nullptr;
        const TopicTrie::RuleId publish = lowest(role.publishTrie, dyn ? &dyn->publish : nullptr);
        if (publish == TopicTrie::kNoRule) continue;
        Decision d;
        d.allowed = true;
        d.byRule = true;
        d.role = role.name;
        if (!role.hasRetain) {
            d.list = RuleList::Publish;
            d.index = publish;
            return d;
        }
        const TopicTrie::RuleId retain = lowest(role.retainTrie, dyn ? &dyn->retain : nullptr);
        if (retain == TopicTrie::kNoRule) continue;
        d.list = RuleList::Retain;
        d.index = retain;
        return d;
    }
    return Decision::defaultDeny();
}

ClientRights::~ClientRights() = default;

const std::vector<std::string>& ClientRights::roles() const {
    return roleSet_->names;
}

Decision ClientRights::first(RuleList list, Query query, std::string_view input) const {
    auto run = [query, input](const TopicTrie& trie, TopicTrie::RuleId bound) {
        switch (query) {
            case Query::Match:
                return trie.firstMatch(input, bound);
            case Query::Cover:
                return trie.firstCover(input, bound);
            case Query::Overlap:
                break;
        }
        return trie.firstOverlap(input, bound);
    };
    const size_t l = listIndex(list);
    bool found = false;
    detail::RuleRef best{};
    if (!dynamic_[l].empty()) {
        if (const TopicTrie::RuleId id = run(dynamic_[l], TopicTrie::kNoRule);
            id != TopicTrie::kNoRule) {
            found = true;
            best = dynamicRules_[id];
        }
    }
    const TopicTrie& trie = roleSet_->tries[l];
    if (!trie.empty()) {
        // Only static rules before the placeholder rule found (if any) can win.
        const auto& refs = roleSet_->refs[l];
        TopicTrie::RuleId bound = TopicTrie::kNoRule;
        if (found) {
            bound = static_cast<TopicTrie::RuleId>(
                std::lower_bound(refs.begin(), refs.end(), best, refBefore) - refs.begin());
        }
        if (const TopicTrie::RuleId id = run(trie, bound); id != TopicTrie::kNoRule) {
            found = true;
            best = refs[id];
        }
    }
    if (!found) return Decision::defaultDeny();
    Decision d;
    d.allowed = isAllowList(list);
    d.byRule = true;
    d.list = list;
    d.role = roleSet_->roles[best.rolePosition]->name;
    d.index = best.index;
    return d;
}

Decision ClientRights::checkPublish(std::string_view topic) const {
    if (!isValidTopicName(topic)) return Decision::defaultDeny();
    if (Decision deny = first(RuleList::DenyPublish, Query::Match, topic); deny.byRule) {
        return deny;
    }
    return first(RuleList::Publish, Query::Match, topic);
}

Decision ClientRights::checkSubscribe(std::string_view filter) const {
    const std::string_view inner = shareInnerFilter(filter);
    if (!isValidTopicFilter(inner)) return Decision::defaultDeny();
    if (Decision deny = first(RuleList::DenySubscribe, Query::Overlap, inner); deny.byRule) {
        return deny;
    }
    return first(RuleList::Subscribe, Query::Cover, inner);
}

SubscribeDecision ClientRights::checkSubscription(std::string_view filter,
                                                  bool deliveriesChecked) const {
    SubscribeDecision out;
    const std::string_view inner = shareInnerFilter(filter);
    if (!isValidTopicFilter(inner)) return out;
    // Entirely inside a denied branch: nothing it selects could ever be delivered.
    if (Decision deny = first(RuleList::DenySubscribe, Query::Cover, inner); deny.byRule) {
        out.decision = deny;
        return out;
    }
    Decision allow = first(RuleList::Subscribe, Query::Cover, inner);
    if (!allow.allowed) {
        out.decision = allow;
        return out;
    }
    Decision overlap = first(RuleList::DenySubscribe, Query::Overlap, inner);
    if (!overlap.byRule) {
        out.outcome = SubscribeOutcome::Grant;
        out.decision = allow;
        return out;
    }
    if (!deliveriesChecked || isSharedFilter(filter)) {
        out.decision = overlap;
        return out;
    }
    out.outcome = SubscribeOutcome::GrantFiltered;
    out.decision = allow;
    out.withheld = overlap;
    return out;
}

Decision ClientRights::checkDelivery(std::string_view topic) const {
    if (!isValidTopicName(topic)) return Decision::defaultDeny();
    if (Decision deny = first(RuleList::DenySubscribe, Query::Match, topic); deny.byRule) {
        return deny;
    }
    return first(RuleList::Subscribe, Query::Match, topic);
}

// ---------------------------------------------------------------- Policy

Policy::Policy() = default;
Policy::~Policy() = default;

std::shared_ptr<const Policy> Policy::compile(const PolicySpec& spec,
                                              std::vector<std::string>& errors) {
    const size_t errorsBefore = errors.size();
    std::shared_ptr<Policy> policy(new Policy());
    policy->spec_ = spec;

    std::unordered_map<std::string_view, const detail::CompiledRole*> byName;
    for (const RoleSpec& roleSpec : policy->spec_.roles) {
        auto role = std::make_unique<detail::CompiledRole>();
        role->name = roleSpec.name;
        role->hasRetain = roleSpec.hasRetain;
        role->maxQos = roleSpec.maxQos;
        if (roleSpec.maxQos > 2)
            errors.push_back("role \"" + roleSpec.name + "\": max_qos must be 0, 1 or 2");
        if (roleSpec.name.empty()) errors.push_back("role with an empty name");
        for (RuleList list : kAllLists) {
            const auto& filters = ruleList(roleSpec, list);
            for (size_t i = 0; i < filters.size(); ++i) {
                const std::string& filter = filters[i];
                if (std::string why = validateRuleFilter(filter); !why.empty()) {
                    errors.push_back("role \"" + roleSpec.name +
                                     "\": " + std::string(ruleListName(list)) + "[" +
                                     std::to_string(i) + "] \"" + filter + "\": " + why);
                    continue;
                }
                if (hasPlaceholder(filter)) {
                    role->templates.push_back({list, static_cast<uint32_t>(i), filter});
                } else if (list == RuleList::Retain) {
                    role->retainTrie.insert(filter, static_cast<TopicTrie::RuleId>(i));
                } else {
                    role->statics[listIndex(list)].emplace_back(static_cast<uint32_t>(i), filter);
                    if (isAllowList(list)) role->hasStaticAllow = true;
                    if (list == RuleList::Publish)
                        role->publishTrie.insert(filter, static_cast<TopicTrie::RuleId>(i));
                }
            }
        }
        if (!byName.emplace(role->name, role.get()).second) {
            errors.push_back("role \"" + roleSpec.name + "\" is defined more than once");
        }
        policy->roles_.push_back(std::move(role));
    }

    // Identities listing the same roles (the common case) share one RoleSet.
    std::map<std::vector<std::string>, const detail::RoleSet*> setsByNames;
    auto makeRoleSet = [&](const std::vector<std::string>& names,
                           const std::string& where) -> const detail::RoleSet* {
        auto set = std::make_unique<detail::RoleSet>();
        bool anyRole = false;
        for (const std::string& name : names) {
            auto it = byName.find(name);
            if (it == byName.end()) {
                errors.push_back(where + ": unknown role \"" + name + "\"");
                continue;
            }
            bool seen = false;
            for (const auto* r : set->roles) seen = seen || r == it->second;
            if (seen) continue;
            set->names.push_back(name);
            set->roles.push_back(it->second);
            if (!it->second->templates.empty()) set->hasTemplates = true;
            if (it->second->hasRetain) set->retainRestricted = true;
            set->maxQos = anyRole ? std::max(set->maxQos, it->second->maxQos) : it->second->maxQos;
            anyRole = true;
        }
        if (auto found = setsByNames.find(set->names); found != setsByNames.end()) {
            return found->second;
        }
        buildTries(*set);
        if (!set->hasTemplates) {
            set->shared.reset(new ClientRights(policy.get(), set.get()));
        }
        const detail::RoleSet* raw = set.get();
        setsByNames.emplace(set->names, raw);
        policy->roleSets_.push_back(std::move(set));
        return raw;
    };
    policy->defaultRoles_ = makeRoleSet(policy->spec_.defaultRoles, "default_roles");
    for (const auto& [identity, names] : policy->spec_.users) {
        policy->users_.emplace(identity, makeRoleSet(names, "users \"" + identity + "\""));
    }

    if (errors.size() != errorsBefore) return nullptr;
    return policy;
}

const detail::RoleSet& Policy::roleSetOf(std::string_view identity) const {
    auto it = users_.find(identity);
    return it != users_.end() ? *it->second : *defaultRoles_;
}

const std::vector<std::string>& Policy::rolesOf(std::string_view identity) const {
    return roleSetOf(identity).names;
}

bool Policy::roleExists(std::string_view name) const {
    for (const auto& role : roles_) {
        if (role->name == name) return true;
    }
    return false;
}

std::shared_ptr<const ClientRights> Policy::rightsFor(std::string_view identity,
                                                      std::string_view clientId) const {
    const detail::RoleSet& set = roleSetOf(identity);
    if (!set.hasTemplates) {
        // Aliasing constructor: shares this Policy's ownership, no allocation.
        return std::shared_ptr<const ClientRights>(shared_from_this(), set.shared.get());
    }
    return expandedRights(set, identity, clientId);
}

std::shared_ptr<const ClientRights> Policy::rightsForRoles(
    std::string_view identity, std::string_view clientId,
    const std::vector<std::string>& roles) const {
    auto set = std::make_shared<detail::RoleSet>();
    for (const std::string& name : roles) {
        for (const auto& role : roles_) {
            if (role->name != name) continue;
            bool seen = false;
            for (const auto* r : set->roles) seen = seen || r == role.get();
            if (seen) break;
            set->names.push_back(name);
            set->roles.push_back(role.get());
            if (!role->templates.empty()) set->hasTemplates = true;
            break;
        }
    }
    if (set->roles.empty()) return rightsFor(identity, clientId);
    buildTries(*set);
    auto rights = expandedRights(*set, identity, clientId);
    rights->ownedSet_ = std::move(set);
    return rights;
}

std::shared_ptr<ClientRights> Policy::expandedRights(const detail::RoleSet& set,
                                                     std::string_view identity,
                                                     std::string_view clientId) const {
    std::shared_ptr<ClientRights> rights(new ClientRights(this, &set));
    rights->keepAlive_ = shared_from_this();
    std::string expanded;
    rights->roleDynamic_.resize(set.roles.size());
    for (uint32_t p = 0; p < set.roles.size(); ++p) {
        for (const detail::RuleTemplate& rule : set.roles[p]->templates) {
            // Retain rules narrow: an unsafe value drops them, like allow rules.
            const bool deny = !isAllowList(rule.list) && rule.list != RuleList::Retain;
            if (!expandRuleFilter(rule.filter, identity, clientId, deny, expanded)) continue;
            if (rule.list == RuleList::Retain) {
                rights->roleDynamic_[p].retain.insert(expanded, rule.index);
                continue;
            }
            if (rule.list == RuleList::Publish)
                rights->roleDynamic_[p].publish.insert(expanded, rule.index);
            const auto id = static_cast<TopicTrie::RuleId>(rights->dynamicRules_.size());
            rights->dynamicRules_.push_back({p, rule.index});
            rights->dynamic_[listIndex(rule.list)].insert(expanded, id);
            if (!deny) rights->hasAnyRights_ = true;
        }
    }
    rights->computeRetain();
    return rights;
}

}  // namespace moat::policy
