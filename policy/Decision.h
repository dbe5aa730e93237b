#pragma once
// The outcome of one ACL check and the rule that decided it (for logs, audit and `explain`).

#include <cstdint>
#include <string>
#include <string_view>

namespace moat::policy {

// The rule lists of a role, as named in the config file.
enum class RuleList : uint8_t { Publish, Subscribe, DenyPublish, DenySubscribe, Retain };

// The lists merged into one trie per role set (Retain is judged per role: a retained PUBLISH
// needs one role that grants both the publish and the retain).
inline constexpr size_t kRuleListCount = 4;

std::string_view ruleListName(RuleList list);  // "publish", "subscribe", "deny_publish", ...

struct Decision {
    bool allowed = false;
    // false: no rule matched ("default deny"); `role`, `list`, `index` are meaningless.
    bool byRule = false;
    RuleList list = RuleList::Publish;
    // Role name; views memory owned by the Policy, valid while the ClientRights that made
    // this Decision (or its Policy) is alive.
    std::string_view role;
    uint32_t index = 0;  // position of the rule in the role's list in the config

    // "role NAME publish[i]", "role NAME deny_subscribe[i]", ... or "default deny".
    std::string describe() const;

    static Decision defaultDeny() { return {}; }
};

// A SUBSCRIBE filter is refused, granted, or granted with part of what it selects withheld:
// a filter inside the subscribe rights that overlaps a deny_subscribe branch is granted and
// every delivery on that branch is dropped by the gateway (CONTRACT §3 "Subscriptions and
// denied branches").
enum class SubscribeOutcome : uint8_t { Refuse, Grant, GrantFiltered };

struct SubscribeDecision {
    SubscribeOutcome outcome = SubscribeOutcome::Refuse;
    // Refuse: the rule that refused (a deny_subscribe rule or "default deny"); otherwise the
    // subscribe rule that grants.
    Decision decision;
    // GrantFiltered: the first deny_subscribe rule whose branch is withheld at delivery.
    Decision withheld;

    bool allowed() const { return outcome != SubscribeOutcome::Refuse; }
};

}  // namespace moat::policy
