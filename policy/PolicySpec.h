#pragma once
// The policy as the operator wrote it (config `policy:` section), before compilation.
// Pure data: filled by gateway/config, compiled by policy/Policy.h.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moat::policy {

struct RoleSpec {
    std::string name;
    std::vector<std::string> publish;      // topic filters the role may publish to
    std::vector<std::string> subscribe;    // filters the role may subscribe to
    std::vector<std::string> denyPublish;  // deny beats allow
    std::vector<std::string> denySubscribe;
    // Topics this role may publish with RETAIN set (within its own publish rights). Absent
    // (hasRetain false) = wherever the role may publish: configs without `retain:` keep the
    // behaviour they had before retain rights existed.
    bool hasRetain = false;
    std::vector<std::string> retain;
    // The highest QoS of the role's PUBLISH packets and subscriptions (absent = 2).
    uint8_t maxQos = 2;
};

enum class OnPublishDenied { Drop, Disconnect };

struct PolicySpec {
    std::vector<std::string> defaultRoles;                  // roles of identities not in users
    std::vector<RoleSpec> roles;                            // in file order
    std::map<std::string, std::vector<std::string>> users;  // identity -> role names
    OnPublishDenied onPublishDenied = OnPublishDenied::Drop;
    bool checkDeliveries = true;
};

}  // namespace moat::policy
