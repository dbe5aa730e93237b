#include <catch2/catch.hpp>

#include "AuditTestUtil.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;
using Severity = Finding::Severity;

namespace {

policy::RoleSpec role(std::string name, std::vector<std::string> publish,
                      std::vector<std::string> subscribe = {}) {
    policy::RoleSpec r;
    r.name = std::move(name);
    r.publish = std::move(publish);
    r.subscribe = std::move(subscribe);
    return r;
}

config::Config withRole(policy::RoleSpec r) {
    auto c = cleanConfig();
    c.policy.users["admin"] = {r.name};
    c.policy.roles.push_back(std::move(r));
    return c;
}

}  // namespace

TEST_CASE("publish to every topic is high") {
    for (const char* filter : {"#", "+/#", "+/+/#"}) {
        INFO(filter);
        auto findings = auditConfig(withRole(role("admin", {filter})), now());
        auto f = find(findings, "role-publish-all");
        REQUIRE(f);
        CHECK(f->severity == Severity::High);
        CHECK(f->subject == "role admin");
    }
}

TEST_CASE("narrower filters are not 'every topic'") {
    for (const char* filter : {"devices/#", "+/status", "+/+", "%u/#", "#/x"}) {
        INFO(filter);
        auto findings = auditConfig(withRole(role("admin", {filter}, {filter})), now());
        CHECK(find(findings, "role-publish-all") == std::nullopt);
        CHECK(find(findings, "role-subscribe-all") == std::nullopt);
    }
}

TEST_CASE("subscribe to every topic is medium, also through a shared subscription") {
    for (const char* filter : {"#", "+/#", "$share/g/#"}) {
        INFO(filter);
        auto f =
            find(auditConfig(withRole(role("admin", {}, {filter})), now()), "role-subscribe-all");
        REQUIRE(f);
        CHECK(f->severity == Severity::Medium);
    }
}

TEST_CASE("$SYS/# access is medium, for publish and subscribe") {
    auto f = find(auditConfig(withRole(role("admin", {}, {"$SYS/#"})), now()), "role-sys-access");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    f = find(auditConfig(withRole(role("admin", {"$SYS/+/#"})), now()), "role-sys-access");
    REQUIRE(f);
    CHECK(f->message.find("publish $SYS/+/#") != std::string::npos);
    // A narrow $SYS subscription (the clean config's operator has one) is fine; `#` does
    // not reach $SYS (MQTT 4.7.2), so it is "every topic" but not $SYS access.
    CHECK(find(auditConfig(withRole(role("admin", {}, {"#"})), now()), "role-sys-access") ==
          std::nullopt);
}

TEST_CASE("a deny rule covering the whole allow rule neutralises it") {
    auto r = role("admin", {"#"}, {"#"});
    r.denyPublish = {"#"};
    r.denySubscribe = {"#"};
    auto findings = auditConfig(withRole(r), now());
    CHECK(find(findings, "role-publish-all") == std::nullopt);
    CHECK(find(findings, "role-subscribe-all") == std::nullopt);
    r.denyPublish = {"secret/#"};  // partial deny: still every other topic
    CHECK(find(auditConfig(withRole(r), now()), "role-publish-all") != std::nullopt);
}

TEST_CASE("placeholder-free publish rule in default_roles is medium") {
    auto c = cleanConfig();
    c.policy.roles[0].publish.push_back("fleet/telemetry");
    auto f = find(auditConfig(c, now()), "shared-publish-rule");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->subject == "role device");
    CHECK(f->message.find("fleet/telemetry") != std::string::npos);
    CHECK(f->message.find("devices/%u/status") == std::string::npos);
}

TEST_CASE("placeholder-free publish rule held by many users is medium") {
    auto c = cleanConfig();  // operator publishes devices/+/commands/# without placeholder
    for (int i = 0; i < 3; ++i) c.policy.users["op" + std::to_string(i)] = {"operator"};
    CHECK(find(auditConfig(c, now()), "shared-publish-rule") == std::nullopt);  // 4 users
    c.policy.users.erase("op0");
    c.policy.users["op3"] = {"operator", "operator"};
    CHECK(find(auditConfig(c, now()), "shared-publish-rule") ==
          std::nullopt);  // a duplicate is one
    c.policy.users["op4"] = {"operator"};
    auto f = find(auditConfig(c, now()), "shared-publish-rule");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(f->subject == "role operator");
    CHECK(f->message.find("5 users") != std::string::npos);
}

TEST_CASE("user with an empty role list is low") {
    auto c = cleanConfig();
    c.policy.users["ghost"] = {};
    auto f = find(auditConfig(c, now()), "user-without-roles");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    CHECK(f->subject == "user ghost");
}

TEST_CASE("unknown roles are high, for users and default_roles") {
    auto c = cleanConfig();
    c.policy.users["bob"] = {"operater"};
    c.policy.defaultRoles.push_back("sensor");
    const auto findings = auditConfig(c, now());
    CHECK(count(findings, "unknown-role") == 2);
    for (const auto& f : findings) {
        if (f.id != "unknown-role") continue;
        CHECK(f.severity == Severity::High);
        CHECK((f.subject == "user bob" || f.subject == "default_roles"));
    }
}

TEST_CASE("unused role is low") {
    auto c = cleanConfig();
    c.policy.roles.push_back(role("legacy", {"legacy/%u"}));
    auto f = find(auditConfig(c, now()), "unused-role");
    REQUIRE(f);
    CHECK(f->severity == Severity::Low);
    CHECK(f->subject == "role legacy");
}

TEST_CASE("publish-all in default_roles is not reported again as a shared rule") {
    auto c = cleanConfig();
    c.policy.roles[0].publish.push_back("#");
    const auto findings = auditConfig(c, now());
    CHECK(find(findings, "role-publish-all") != std::nullopt);
    CHECK(find(findings, "shared-publish-rule") == std::nullopt);
}

TEST_CASE("retain on every topic is medium: an explicit #-wide retain, or none on publish #") {
    auto explicitAll = role("admin", {"devices/#"});
    explicitAll.hasRetain = true;
    explicitAll.retain = {"#"};
    auto f = find(auditConfig(withRole(explicitAll), now()), "role-retain-all");
    REQUIRE(f);
    CHECK(f->severity == Severity::Medium);
    CHECK(find(auditConfig(withRole(role("admin", {"#"})), now()), "role-retain-all"));
    auto narrowed = role("admin", {"#"});
    narrowed.hasRetain = true;
    narrowed.retain = {"devices/+/status"};
    CHECK_FALSE(find(auditConfig(withRole(narrowed), now()), "role-retain-all"));
    CHECK_FALSE(
        find(auditConfig(withRole(role("admin", {"devices/#"})), now()), "role-retain-all"));
}
