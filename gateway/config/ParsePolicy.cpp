// `policy:` (roles, users, default roles) and `integrity:` (signed-topic rules).

#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "gateway/config/FileCheck.h"
#include "gateway/config/Parse.h"
#include "gateway/config/TopicFilter.h"

namespace moat::config::detail {
namespace {

bool isRoleName(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.';
    });
}

// A list of topic filters; bad entries are reported and left out.
void readFilters(Diagnostics& d, const Field& f, std::vector<std::string>& out) {
    auto items = openList(d, f);
    if (!items) return;
    for (const auto& item : *items) {
        std::string filter;
        if (!readString(d, item, filter)) continue;
        std::string why = topicFilterError(filter, true);
        if (!why.empty()) {
            d.error(item.line, item.path + ": bad topic filter " + quoteValue(filter) + ": " + why);
            continue;
        }
        out.push_back(std::move(filter));
    }
}

void parseRole(Diagnostics& d, MapReader& m, policy::RoleSpec& role) {
    if (auto f = m.take("publish")) readFilters(d, *f, role.publish);
    if (auto f = m.take("subscribe")) readFilters(d, *f, role.subscribe);
    if (auto f = m.take("deny_publish")) readFilters(d, *f, role.denyPublish);
    if (auto f = m.take("deny_subscribe")) readFilters(d, *f, role.denySubscribe);
    if (auto f = m.take("retain")) {
        role.hasRetain = true;  // `retain: []` = no retained PUBLISH at all
        readFilters(d, *f, role.retain);
    }
    if (auto f = m.take("max_qos")) {
        uint32_t qos = 2;
        if (readUint(d, *f, qos, 0, 2, false)) role.maxQos = static_cast<uint8_t>(qos);
    }
    m.finish();
}

// The distinct scalar keys of a mapping, in file order (duplicates are reported by MapReader).
std::vector<std::string> keysOf(const YAML::Node& node) {
    std::vector<std::string> names;
    if (!node.IsMap()) return names;
    std::unordered_set<std::string> seen;  // users: can hold thousands of identities
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;  // by value: the iterator's pair is a temporary
        if (!key.IsScalar()) continue;
        const std::string& name = key.Scalar();
        if (seen.insert(name).second) names.push_back(name);
    }
    return names;
}

// Names defined in policy.roles; null when `roles` failed to parse, so that references are
// not judged against a partial list (the cause is reported already).
using RoleNames = std::unordered_set<std::string>;

// Role references (default_roles, users.X): each must name a role of policy.roles.
void readRoleRefs(Diagnostics& d, const Field& f, const RoleNames* known,
                  std::vector<std::string>& out) {
    auto items = openList(d, f);
    if (!items) return;
    std::unordered_set<std::string> seen;
    for (const auto& item : *items) {
        std::string name;
        if (!readString(d, item, name)) continue;
        if (known && known->count(name) == 0) {
            d.error(item.line, item.path + ": unknown role " + quoteValue(name) +
                                   " (not defined in policy.roles)");
            continue;
        }
        if (!seen.insert(name).second) continue;  // a harmless repeat
        out.push_back(std::move(name));
    }
}

void parseRoles(Diagnostics& d, const Field& f, policy::PolicySpec& out, bool& rolesKnown) {
    auto roles = openMap(d, f, true);
    if (!roles) {
        rolesKnown = false;
        return;
    }
    // Walk the mapping through the reader so duplicate names are reported once.
    std::vector<std::string> names = keysOf(f.node);
    for (const auto& name : names) {
        auto rf = roles->take(name);
        if (!rf) continue;
        if (!isRoleName(name)) {
            d.error(rf->line, rf->path + ": bad role name " + quoteValue(name) +
                                  " (use letters, digits, '.', '_' and '-', at most 64)");
            continue;
        }
        policy::RoleSpec role;
        role.name = name;
        if (auto rm = openMap(d, *rf, true)) parseRole(d, *rm, role);
        out.roles.push_back(std::move(role));
    }
    roles->finish();
}

void parseUsers(Diagnostics& d, const Field& f, policy::PolicySpec& out, const RoleNames* known) {
    auto users = openMap(d, f, true);
    if (!users) return;
    std::vector<std::string> names = keysOf(f.node);
    for (const auto& name : names) {
        auto uf = users->take(name);
        if (!uf) continue;
        if (name.empty() || !isValidMqttUtf8(name)) {
            d.error(uf->line, uf->path + ": an identity must be non-empty UTF-8");
            continue;
        }
        std::vector<std::string> roles;
        readRoleRefs(d, *uf, known, roles);
        out.users[name] = std::move(roles);
    }
    users->finish();
}

// Per-identity key paths may hold %u (the identity) and nothing else after a '%'.
bool keyPlaceholdersOk(std::string_view path) {
    for (size_t i = path.find('%'); i != std::string_view::npos; i = path.find('%', i + 2)) {
        if (i + 1 >= path.size() || path[i + 1] != 'u') return false;
    }
    return true;
}

void readKey(LoadContext& ctx, const Field& f, std::string& out) {
    Diagnostics& d = ctx.diag;
    std::string raw;
    if (!readString(d, f, raw)) return;
    if (!keyPlaceholdersOk(raw)) {
        d.error(f.line, f.path + ": bad key path " + quoteValue(raw) +
                            " (the only placeholder is %u, the identity)");
        return;
    }
    size_t placeholder = raw.find("%u");
    if (placeholder == std::string::npos) {
        readFilePath(ctx, f, out);
        return;
    }
    // Per-identity keys are read when a device publishes; here only their folder can be
    // checked (up to the first placeholder).
    std::string path = resolvePath(ctx.baseDir, raw);
    std::string fixed = path.substr(0, path.find("%u"));
    std::string dir = fixed.substr(0, fixed.rfind('/'));
    if (dir.empty()) dir = "/";
    std::string reason = missingDirReason(dir);
    if (!reason.empty()) {
        d.error(f.line, f.path + ": key folder " + quoteValue(dir) + ": " + reason);
        return;
    }
    out = std::move(path);
}

void parseRule(LoadContext& ctx, MapReader& m, IntegrityRule& rule) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("topics")) {
        readFilters(d, *f, rule.topics);
        if (f->node.IsSequence() && f->node.size() == 0) {
            d.error(f->line, f->path + ": must list at least one topic filter");
        }
    } else {
        d.error(m.line(), "missing required key 'topics' in " + m.path());
    }
    if (auto f = m.take("algorithm")) {
        readEnum<IntegrityAlgorithm>(d, *f, rule.algorithm,
                                     {{"hmac-sha256", IntegrityAlgorithm::HmacSha256},
                                      {"ed25519", IntegrityAlgorithm::Ed25519}});
    }
    if (auto f = m.take("key")) {
        readKey(ctx, *f, rule.key);
    } else {
        d.error(m.line(), "missing required key 'key' in " + m.path());
    }
    if (auto f = m.take("max_age")) {
        Millis age{};
        if (readDuration(d, *f, age, Millis{1000})) rule.maxAge = age;
    }
    if (auto f = m.take("on_invalid")) {
        readEnum<OnInvalid>(d, *f, rule.onInvalid,
                            {{"drop", OnInvalid::Drop}, {"disconnect", OnInvalid::Disconnect}});
    }
    m.finish();
}

}  // namespace

void parsePolicy(LoadContext& ctx, MapReader& m, policy::PolicySpec& out) {
    Diagnostics& d = ctx.diag;
    bool rolesKnown = true;
    // Roles first: default_roles and users refer to them, wherever they sit in the file.
    if (auto f = m.take("roles")) parseRoles(d, *f, out, rolesKnown);
    RoleNames names;
    for (const auto& role : out.roles) names.insert(role.name);
    const RoleNames* known = rolesKnown ? &names : nullptr;
    if (auto f = m.take("default_roles")) readRoleRefs(d, *f, known, out.defaultRoles);
    if (auto f = m.take("users")) parseUsers(d, *f, out, known);
    if (auto f = m.take("on_publish_denied")) {
        readEnum<policy::OnPublishDenied>(d, *f, out.onPublishDenied,
                                          {{"drop", policy::OnPublishDenied::Drop},
                                           {"disconnect", policy::OnPublishDenied::Disconnect}});
    }
    if (auto f = m.take("check_deliveries")) readBool(d, *f, out.checkDeliveries);
    m.finish();
}

void parseIntegrity(LoadContext& ctx, MapReader& m, IntegrityConfig& out) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("rules")) {
        if (auto items = openList(d, *f)) {
            for (const auto& item : *items) {
                auto rm = openMap(d, item, false);
                if (!rm) continue;
                IntegrityRule rule;
                rule.line = item.line;
                parseRule(ctx, *rm, rule);
                out.rules.push_back(std::move(rule));
            }
        }
    }
    if (auto f = m.take("stamp_identity")) readBool(d, *f, out.stampIdentity);
    m.finish();
}

}  // namespace moat::config::detail
