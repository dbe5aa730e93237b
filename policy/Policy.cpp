#include "policy/Policy.h"

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
    TopicTrie tries[kRuleListCount];      // placeholder-free rules; rule id = index in list
    std::vector<RuleTemplate> templates;  // in (list, index) order
    bool hasStaticAllow = false;
};

// The resolved roles of a `users:` entry or of default_roles.
struct RoleSet {
    std::vector<std::string> names;  // deduplicated, in listed order
    std::vector<const CompiledRole*> roles;
    bool hasTemplates = false;
    std::unique_ptr<ClientRights> shared;  // the rights of every identity, when !hasTemplates
};

}  // namespace detail

namespace {

constexpr uint32_t kNoPosition = UINT32_MAX;

bool isAllowList(RuleList list) { return list == RuleList::Publish || list == RuleList::Subscribe; }

size_t listIndex(RuleList list) { return static_cast<size_t>(list); }

const std::vector<std::string>& ruleList(const RoleSpec& role, RuleList list) {
    switch (list) {
        case RuleList::Publish:
            return role.publish;
        case RuleList::Subscribe:
            return role.subscribe;
        case RuleList::DenyPublish:
            return role.denyPublish;
        case RuleList::DenySubscribe:
            break;
    }
    return role.denySubscribe;
}

constexpr RuleList kAllLists[] = {RuleList::Publish, RuleList::Subscribe, RuleList::DenyPublish,
                                  RuleList::DenySubscribe};

}  // namespace

// ---------------------------------------------------------------- ClientRights

ClientRights::ClientRights(const Policy* policy, const detail::RoleSet* roleSet)
    : policy_(policy), roleSet_(roleSet) {
    for (const detail::CompiledRole* role : roleSet->roles) {
        if (role->hasStaticAllow) hasAnyRights_ = true;
    }
}

ClientRights::~ClientRights() = default;

const std::vector<std::string>& ClientRights::roles() const { return roleSet_->names; }

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
    uint32_t bestPosition = kNoPosition;
    uint32_t bestIndex = TopicTrie::kNoRule;
    if (!dynamic_[l].empty()) {
        // Dynamic ids were assigned in (role position, index) order, so the lowest id is the
        // first rule in config order.
        const TopicTrie::RuleId id = run(dynamic_[l], TopicTrie::kNoRule);
        if (id != TopicTrie::kNoRule) {
            bestPosition = dynamicRules_[id].rolePosition;
            bestIndex = dynamicRules_[id].index;
        }
    }
    const auto& roles = roleSet_->roles;
    for (uint32_t p = 0; p < roles.size() && p <= bestPosition; ++p) {
        const TopicTrie& trie = roles[p]->tries[l];
        if (trie.empty()) continue;
        const TopicTrie::RuleId bound = p == bestPosition ? bestIndex : TopicTrie::kNoRule;
        const TopicTrie::RuleId id = run(trie, bound);
        if (id != TopicTrie::kNoRule) {
            bestPosition = p;
            bestIndex = id;
        }
    }
    if (bestPosition == kNoPosition) return Decision::defaultDeny();
    Decision d;
    d.allowed = isAllowList(list);
    d.byRule = true;
    d.list = list;
    d.role = roles[bestPosition]->name;
    d.index = bestIndex;
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
        if (roleSpec.name.empty()) errors.push_back("role with an empty name");
        for (RuleList list : kAllLists) {
            const auto& filters = ruleList(roleSpec, list);
            for (size_t i = 0; i < filters.size(); ++i) {
                const std::string& filter = filters[i];
                if (std::string why = validateRuleFilter(filter); !why.empty()) {
                    errors.push_back("role \"" + roleSpec.name + "\": " +
                                     std::string(ruleListName(list)) + "[" + std::to_string(i) +
                                     "] \"" + filter + "\": " + why);
                    continue;
                }
                if (hasPlaceholder(filter)) {
                    role->templates.push_back({list, static_cast<uint32_t>(i), filter});
                } else {
                    role->tries[listIndex(list)].insert(filter, static_cast<uint32_t>(i));
                    if (isAllowList(list)) role->hasStaticAllow = true;
                }
            }
        }
        if (!byName.emplace(role->name, role.get()).second) {
            errors.push_back("role \"" + roleSpec.name + "\" is defined more than once");
        }
        policy->roles_.push_back(std::move(role));
    }

    auto makeRoleSet = [&](const std::vector<std::string>& names, const std::string& where) {
        auto set = std::make_unique<detail::RoleSet>();
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
        }
        if (!set->hasTemplates) {
            set->shared.reset(new ClientRights(policy.get(), set.get()));
        }
        return set;
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
    std::shared_ptr<ClientRights> rights(new ClientRights(this, &set));
    rights->keepAlive_ = shared_from_this();
    std::string expanded;
    for (uint32_t p = 0; p < set.roles.size(); ++p) {
        for (const detail::RuleTemplate& rule : set.roles[p]->templates) {
            const bool deny = !isAllowList(rule.list);
            if (!expandRuleFilter(rule.filter, identity, clientId, deny, expanded)) continue;
            const auto id = static_cast<TopicTrie::RuleId>(rights->dynamicRules_.size());
            rights->dynamicRules_.push_back({p, rule.index});
            rights->dynamic_[listIndex(rule.list)].insert(expanded, id);
            if (!deny) rights->hasAnyRights_ = true;
        }
    }
    return rights;
}

}  // namespace moat::policy
