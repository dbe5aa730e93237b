// Policy checks: over-broad filters, shared placeholder-free publish rules, users without
// roles, unknown and unused roles.

#include <map>
#include <set>

#include "gateway/audit/Checks.h"
#include "policy/TopicMatch.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;

namespace {

// A role whose placeholder-free publish rules are held by at least this many users is
// "shared": each of them can publish what the others are expected to publish.
constexpr size_t kSharedRoleUsers = 5;

// True when every level after `from` is `+` or `#` and the last one is `#`: the filter
// selects (nearly) every topic below that point. `#`, `+/#`, `+/+/#`.
bool wildcardTail(std::string_view filter, size_t from) {
    std::string_view rest = filter.substr(from);
    if (rest.empty()) return false;
    size_t i = 0;
    while (true) {
        size_t slash = rest.find('/', i);
        std::string_view level =
            rest.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i);
        if (slash == std::string_view::npos) return level == "#";
        if (level != "+") return false;
        i = slash + 1;
    }
}

bool coversEverything(std::string_view filter) {
    return wildcardTail(filter, 0);
}

bool coversSys(std::string_view filter) {
    return filter.rfind("$SYS/", 0) == 0 && wildcardTail(filter, 5);
}

bool hasPlaceholder(std::string_view filter) {
    return filter.find("%u") != std::string_view::npos ||
           filter.find("%c") != std::string_view::npos;
}

// A deny rule that covers the whole allow rule neutralises it.
bool deniedEntirely(std::string_view filter, const std::vector<std::string>& denies) {
    for (const auto& d : denies)
        if (policy::filterCovers(d, filter)) return true;
    return false;
}

std::string joinQuoted(const std::vector<std::string>& items) {
    std::string s;
    for (const auto& i : items) {
        if (!s.empty()) s += ", ";
        s += '"' + i + '"';
    }
    return s;
}

struct RoleUse {
    bool inDefault = false;
    size_t users = 0;
};

void auditRole(const policy::RoleSpec& role, const RoleUse& use, Findings& out) {
    const std::string subject = "role " + role.name;
    std::vector<std::string> pubAll, subAll, sys, shared;
    for (const auto& f : role.publish) {
        if (deniedEntirely(f, role.denyPublish)) continue;
        if (coversEverything(f)) pubAll.push_back(f);
        if (coversSys(f)) sys.push_back("publish " + f);
        // `#` is already a high finding of its own; do not report it twice.
        if (!hasPlaceholder(f) && !coversEverything(f)) shared.push_back(f);
    }
    for (const auto& raw : role.subscribe) {
        std::string_view f = policy::shareInnerFilter(raw);
        if (f.empty() || deniedEntirely(f, role.denySubscribe) ||
            deniedEntirely(raw, role.denySubscribe))
            continue;
        if (coversEverything(f)) subAll.push_back(raw);
        if (coversSys(f)) sys.push_back("subscribe " + raw);
    }

    // Retained messages reach every future subscriber: a role that may retain on every topic
    // (a `#`-wide retain filter, or no `retain:` key on a `#`-wide publish right) can plant
    // state every device reads at connect.
    std::vector<std::string> retainAll;
    if (role.hasRetain) {
        for (const auto& f : role.retain)
            if (coversEverything(f)) retainAll.push_back(f);
    } else {
        retainAll = pubAll;
    }
    if (!retainAll.empty()) {
        out.push_back(
            {Severity::Medium, "role-retain-all", subject,
             "may publish retained messages on every topic (" + joinQuoted(retainAll) +
                 (role.hasRetain ? "" : ", no retain: key") +
                 "): they reach every future subscriber",
             "list the topics where the role may retain: retain: [\"devices/%u/status\"]"});
    }
    if (!pubAll.empty()) {
        out.push_back({Severity::High, "role-publish-all", subject,
                       "may publish to every topic (" + joinQuoted(pubAll) +
                           "): any holder can forge commands and telemetry for every device",
                       "list the topics the role needs, scoped with %u (devices/%u/...)"});
    }
    if (!subAll.empty()) {
        out.push_back({Severity::Medium, "role-subscribe-all", subject,
                       "may subscribe to every topic (" + joinQuoted(subAll) +
                           "): any holder reads all traffic",
                       "subscribe to the subtrees the role needs"});
    }
    if (!sys.empty()) {
        out.push_back({Severity::Medium, "role-sys-access", subject,
                       "has broker-internal $SYS access (" + joinQuoted(sys) +
                           "): client lists, addresses and load leak to its holders",
                       "grant only the $SYS topics needed, e.g. $SYS/broker/clients/connected"});
    }
    if (!shared.empty() && (use.inDefault || use.users >= kSharedRoleUsers)) {
        const std::string who = use.inDefault
                                    ? "every identity without a users: entry (default_roles)"
                                    : std::to_string(use.users) + " users";
        out.push_back({Severity::Medium, "shared-publish-rule", subject,
                       "publish rules without %u/%c (" + joinQuoted(shared) + ") are shared by " +
                           who + ": devices can publish on each other's topics",
                       "scope the rules with %u or %c (devices/%u/...), or move shared topics to "
                       "a role for the few identities that need them"});
    }
}

}  // namespace

void auditPolicy(const config::Config& config, Findings& out) {
    const policy::PolicySpec& spec = config.policy;
    std::map<std::string, RoleUse> use;
    for (const auto& r : spec.roles) use[r.name];

    for (const auto& name : spec.defaultRoles) {
        auto it = use.find(name);
        if (it == use.end()) {
            out.push_back({Severity::High, "unknown-role", "default_roles",
                           "names role \"" + name + "\", which policy.roles does not define",
                           "define role " + name + " or remove it from default_roles"});
        } else {
            it->second.inDefault = true;
        }
    }
    for (const auto& [user, roles] : spec.users) {
        const std::string subject = "user " + user;
        if (roles.empty()) {
            out.push_back({Severity::Low, "user-without-roles", subject,
                           "has an empty role list: it can authenticate but is denied every "
                           "publish and subscribe (default_roles do not apply to it)",
                           "give it roles, or remove it (and its credentials) if it is retired"});
        }
        std::set<std::string_view> counted;  // [r, r] is one use
        for (const auto& role : roles) {
            auto it = use.find(role);
            if (it == use.end()) {
                out.push_back({Severity::High, "unknown-role", subject,
                               "names role \"" + role + "\", which policy.roles does not define",
                               "define role " + role + " or fix the name in users." + user});
            } else if (counted.insert(role).second) {
                ++it->second.users;
            }
        }
    }

    for (const auto& role : spec.roles) {
        const RoleUse& u = use[role.name];
        if (!u.inDefault && u.users == 0) {
            out.push_back({Severity::Low, "unused-role", "role " + role.name,
                           "is not in default_roles and no user has it",
                           "remove it, or assign it where intended"});
        }
        auditRole(role, u, out);
    }
}

}  // namespace moat::audit::detail
