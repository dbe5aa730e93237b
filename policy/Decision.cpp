#include "policy/Decision.h"

namespace moat::policy {

std::string_view ruleListName(RuleList list) {
    switch (list) {
        case RuleList::Publish:
            return "publish";
        case RuleList::Subscribe:
            return "subscribe";
        case RuleList::DenyPublish:
            return "deny_publish";
        case RuleList::DenySubscribe:
            return "deny_subscribe";
        case RuleList::Retain:
            return "retain";
    }
    return "unknown";
}

std::string Decision::describe() const {
    if (!byRule) return "default deny";
    std::string out = "role ";
    out.append(role);
    out.push_back(' ');
    out.append(ruleListName(list));
    out.push_back('[');
    out.append(std::to_string(index));
    out.push_back(']');
    return out;
}

}  // namespace moat::policy
