#pragma once
// The compiled policy: roles -> topic tries, identities -> roles, and per-connection rights.
//
// Lifecycle: Policy::compile() once per (re)load, off the event loops; the result is
// immutable and shared by every worker. Policy::rightsFor() once per authenticated
// connection; the ClientRights it returns is immutable too and answers every ACL check of
// that connection without allocating.
//
// Semantics (deny beats allow; the first matching rule in config order is reported):
//   publish TOPIC    allowed iff some publish rule matches TOPIC and no deny_publish does.
//   subscribe F      F is the filter after removing `$share/<group>/`. Allowed iff some
//                    subscribe rule COVERS F (every topic F can match is matched by the rule)
//                    and no deny_subscribe rule OVERLAPS F (no topic is matched by both).
//                    A subscription is judged by what it could deliver: `devices/#` against
//                    deny_subscribe `devices/secret/#` is denied, since it would deliver
//                    denied topics; subscribe `devices/+/x` is not enough for `devices/#`.
//   subscription F   the SUBSCRIBE decision (checkSubscription), three-valued: refused when
//                    no subscribe rule covers F or a deny_subscribe rule covers it (F lies
//                    entirely inside a denied branch); granted when no deny_subscribe rule
//                    overlaps F; otherwise granted with the denied branch withheld at
//                    delivery, except when deliveries are not checked (check_deliveries:
//                    false) or F is a shared subscription (withholding would lose those
//                    messages for the whole group): then refused. checkSubscribe above is
//                    the strict, filter-only form (a grant that needs no withholding).
//   retain TOPIC     a retained PUBLISH (on a topic checkPublish allows): allowed iff one role
//                    of the identity both grants the publish (a publish rule of that role
//                    matches) and grants retain there (its `retain` rules match, or it has
//                    no `retain:` key: then wherever it may publish). Per role, so that a
//                    role's retain list never widens another role's publish rights.
//   max QoS          the highest max_qos of the identity's roles (absent = 2).
//   delivery TOPIC   a broker->client PUBLISH: allowed iff some subscribe rule matches TOPIC
//                    and no deny_subscribe rule does (a per-message backstop for what the
//                    filter-level check cannot see, e.g. retained messages after a reload).
// "First rule": roles in the order the identity's `users:` entry (or default_roles) lists
// them, then the rule's position in that role's list.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/Decision.h"
#include "policy/PolicySpec.h"
#include "policy/TopicTrie.h"

namespace moat::policy {

class Policy;

namespace detail {
struct CompiledRole;
struct RoleSet;
// A role's placeholder publish / retain rules expanded for one client (ids = rule index).
struct RoleTries {
    TopicTrie publish;
    TopicTrie retain;
};

// Which rule a trie id stands for: the role's position in the identity's role list and the
// rule's index in that role's list. Ids are assigned in (position, index) order, so the
// lowest id is the first rule in config order.
struct RuleRef {
    uint32_t rolePosition;
    uint32_t index;
};
}  // namespace detail

class ClientRights {
  public:
    Decision checkPublish(std::string_view topic) const;
    Decision checkSubscribe(std::string_view filter) const;
    Decision checkDelivery(std::string_view topic) const;
    // `deliveriesChecked`: policy.check_deliveries (withholding is possible).
    SubscribeDecision checkSubscription(std::string_view filter, bool deliveriesChecked) const;
    // A retained PUBLISH on `topic`, which checkPublish allows: the rule that grants retain
    // (`role R retain[i]`, or `role R publish[i]` of a role without `retain:`) or a deny.
    Decision checkRetain(std::string_view topic) const;
    // Some role grants retain somewhere (a role with publish rights and no `retain:` key, or
    // with retain rules left after placeholder expansion).
    bool hasAnyRetain() const { return hasAnyRetain_; }
    // Some role of the identity has a `retain:` key. Retain Available 0 is announced only
    // then (with !hasAnyRetain()): identities whose roles never mention retain keep the
    // CONNACK they always had.
    bool retainRestricted() const;
    // The highest QoS this client may publish or subscribe with (max over its roles).
    uint8_t maxQos() const;

    // False when no publish and no subscribe rule can ever allow anything for this client
    // (no roles, empty roles, or only placeholder rules dropped for unsafe values).
    bool hasAnyRights() const { return hasAnyRights_; }

    // The identity's roles, deduplicated, in the order they were listed.
    const std::vector<std::string>& roles() const;

    const Policy& policy() const { return *policy_; }

    ClientRights(const ClientRights&) = delete;
    ClientRights& operator=(const ClientRights&) = delete;
    ~ClientRights();

  private:
    friend class Policy;
    friend struct detail::RoleSet;

    enum class Query { Match, Cover, Overlap };

    ClientRights(const Policy* policy, const detail::RoleSet* roleSet);

    // First rule of `list` (over static and placeholder rules) satisfying `query` for input.
    Decision first(RuleList list, Query query, std::string_view input) const;

    const Policy* policy_;
    const detail::RoleSet* roleSet_;
    std::shared_ptr<const Policy> keepAlive_;  // set for per-connection (placeholder) rights
    std::shared_ptr<const detail::RoleSet> ownedSet_;  // roles given at connect (token claim)
    TopicTrie dynamic_[kRuleListCount];  // placeholder rules, expanded for this client
    std::vector<detail::RuleRef> dynamicRules_;
    std::vector<detail::RoleTries> roleDynamic_;  // by role position; empty without templates
    bool hasAnyRights_ = false;
    bool hasAnyRetain_ = false;

    void computeRetain();
};

class Policy : public std::enable_shared_from_this<Policy> {
  public:
    // Validates and compiles. On any problem appends one message per problem to `errors`
    // (e.g. `role "device": publish[1] "a/#/b": invalid topic filter (...)`; the config
    // loader prefixes file:line) and returns nullptr.
    static std::shared_ptr<const Policy> compile(const PolicySpec& spec,
                                                 std::vector<std::string>& errors);

    // Rights of an authenticated connection. The identity's roles come from its `users:`
    // entry, else from default_roles; placeholders are filled in here, once. Without
    // placeholder rules in those roles this returns a shared, precomputed object (no
    // allocation). The result keeps this Policy alive.
    std::shared_ptr<const ClientRights> rightsFor(std::string_view identity,
                                                  std::string_view clientId) const;

    // Rights from roles named at connect time (auth.token roles_claim) instead of the
    // identity's `users:` entry / default_roles; names the policy does not define are skipped
    // (the caller has filtered them already). No known role: rightsFor(identity, clientId).
    std::shared_ptr<const ClientRights> rightsForRoles(std::string_view identity,
                                                       std::string_view clientId,
                                                       const std::vector<std::string>& roles) const;

    // The roles rightsFor(identity, ...) would use.
    const std::vector<std::string>& rolesOf(std::string_view identity) const;

    bool roleExists(std::string_view name) const;
    const PolicySpec& spec() const { return spec_; }

    Policy(const Policy&) = delete;
    Policy& operator=(const Policy&) = delete;
    ~Policy();

  private:
    friend class ClientRights;
    friend struct detail::RoleSet;
    Policy();

    const detail::RoleSet& roleSetOf(std::string_view identity) const;
    // Per-connection rights over `set` (placeholders expanded), kept alive by the result.
    std::shared_ptr<ClientRights> expandedRights(const detail::RoleSet& set,
                                                 std::string_view identity,
                                                 std::string_view clientId) const;

    PolicySpec spec_;
    std::vector<std::unique_ptr<detail::CompiledRole>> roles_;  // in spec order
    // Identities listing the same roles share one RoleSet (and its tries).
    std::vector<std::unique_ptr<detail::RoleSet>> roleSets_;
    std::map<std::string, const detail::RoleSet*, std::less<>> users_;
    const detail::RoleSet* defaultRoles_ = nullptr;
};

}  // namespace moat::policy
