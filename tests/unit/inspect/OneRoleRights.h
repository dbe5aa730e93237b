#pragma once
// Session tests: the rights of an identity holding one role, compiled from a one-role policy.

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "policy/Policy.h"

namespace moat::test {

inline std::shared_ptr<const policy::ClientRights> oneRoleRights(
    std::vector<std::string> publish, std::vector<std::string> subscribe,
    std::vector<std::string> denySubscribe = {}, const std::string& identity = "d1") {
    policy::PolicySpec spec;
    policy::RoleSpec role;
    role.name = "dev";
    role.publish = std::move(publish);
    role.subscribe = std::move(subscribe);
    role.denySubscribe = std::move(denySubscribe);
    spec.roles.push_back(role);
    spec.defaultRoles = {"dev"};
    std::vector<std::string> errors;
    auto policy = policy::Policy::compile(spec, errors);
    REQUIRE(policy);
    return policy->rightsFor(identity, identity);
}

}  // namespace moat::test
