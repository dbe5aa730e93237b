#pragma once
// The policy as the operator wrote it (config `policy:` section), before compilation.
// Pure data: filled by gateway/config, compiled by policy/Policy.h.

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
