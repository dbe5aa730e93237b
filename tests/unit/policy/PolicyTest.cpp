#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "policy/Policy.h"

using namespace moat::policy;

namespace {

RoleSpec role(std::string name, std::vector<std::string> publish,
              std::vector<std::string> subscribe, std::vector<std::string> denyPublish = {},
              std::vector<std::string> denySubscribe = {}) {
    RoleSpec r;
    r.name = std::move(name);
    r.publish = std::move(publish);
    r.subscribe = std::move(subscribe);
    r.denyPublish = std::move(denyPublish);
    r.denySubscribe = std::move(denySubscribe);
    return r;
}

// The example policy of the contract (CONTRACT.md section 2).
PolicySpec contractSpec() {
    PolicySpec spec;
    spec.defaultRoles = {"device"};
    spec.roles.push_back(
        role("device", {"devices/%u/telemetry/#", "devices/%u/status"}, {"devices/%u/commands/#"}));
    spec.roles.push_back(role("operator", {"devices/+/commands/#"},
                              {"devices/#", "$SYS/broker/clients/#"},
                              {"devices/+/commands/firmware/#"}));
    spec.users["ops-console"] = {"operator"};
    return spec;
}

std::shared_ptr<const Policy> compileOk(const PolicySpec& spec) {
    std::vector<std::string> errors;
    auto policy = Policy::compile(spec, errors);
    INFO((errors.empty() ? std::string() : errors.front()));
    REQUIRE(errors.empty());
    REQUIRE(policy);
    return policy;
}

std::vector<std::string> compileErrors(const PolicySpec& spec) {
    std::vector<std::string> errors;
    auto policy = Policy::compile(spec, errors);
    CHECK_FALSE(policy);
    return errors;
}

bool anyContains(const std::vector<std::string>& errors, const std::string& needle) {
    return std::any_of(errors.begin(), errors.end(),
                       [&](const std::string& e) { return e.find(needle) != std::string::npos; });
}

}  // namespace

TEST_CASE("Policy: contract example", "[policy]") {
    auto policy = compileOk(contractSpec());
    auto dev = policy->rightsFor("d1", "d1");
    CHECK(dev->roles() == std::vector<std::string>{"device"});
    CHECK(dev->hasAnyRights());

    CHECK(dev->checkPublish("devices/d1/telemetry").allowed);
    CHECK(dev->checkPublish("devices/d1/telemetry/temp").describe() == "role device publish[0]");
    CHECK(dev->checkPublish("devices/d1/status").describe() == "role device publish[1]");
    CHECK_FALSE(dev->checkPublish("devices/d2/status").allowed);
    CHECK(dev->checkPublish("devices/d2/status").describe() == "default deny");
    CHECK_FALSE(dev->checkPublish("devices/d1/commands/x").allowed);

    CHECK(dev->checkSubscribe("devices/d1/commands/#").describe() == "role device subscribe[0]");
    CHECK(dev->checkSubscribe("devices/d1/commands/+/x").allowed);
    CHECK_FALSE(dev->checkSubscribe("devices/+/commands/#").allowed);
    CHECK_FALSE(dev->checkSubscribe("#").allowed);
    CHECK(dev->checkDelivery("devices/d1/commands/reboot").allowed);
    CHECK_FALSE(dev->checkDelivery("devices/d2/commands/reboot").allowed);

    auto ops = policy->rightsFor("ops-console", "console-1");
    CHECK(ops->roles() == std::vector<std::string>{"operator"});
    CHECK(ops->checkPublish("devices/d7/commands/reboot").describe() == "role operator publish[0]");
    const Decision fw = ops->checkPublish("devices/d7/commands/firmware/update");
    CHECK_FALSE(fw.allowed);
    CHECK(fw.byRule);
    CHECK(fw.describe() == "role operator deny_publish[0]");
    CHECK(ops->checkSubscribe("devices/#").describe() == "role operator subscribe[0]");
    CHECK(ops->checkSubscribe("$SYS/broker/clients/connected").describe() ==
          "role operator subscribe[1]");
    CHECK_FALSE(ops->checkSubscribe("$SYS/#").allowed);
    CHECK_FALSE(ops->checkSubscribe("#").allowed);  // `devices/#` does not cover `#`
}

TEST_CASE("Policy: compile errors", "[policy]") {
    SECTION("unknown roles") {
        PolicySpec spec = contractSpec();
        spec.defaultRoles.push_back("ghost");
        spec.users["alice"] = {"operator", "phantom"};
        const auto errors = compileErrors(spec);
        CHECK(errors.size() == 2);
        CHECK(anyContains(errors, "default_roles: unknown role \"ghost\""));
        CHECK(anyContains(errors, "users \"alice\": unknown role \"phantom\""));
    }
    SECTION("invalid filters and placeholders, one message each") {
        PolicySpec spec;
        spec.roles.push_back(
            role("r", {"a/#/b", "ok/#", "a/%x", "a/%", "x+"}, {"$share/g/a"}, {""}, {"%u/%c/#"}));
        const auto errors = compileErrors(spec);
        CHECK(errors.size() == 6);
        CHECK(anyContains(errors, "role \"r\": publish[0] \"a/#/b\": invalid topic filter"));
        CHECK(anyContains(errors, "publish[2] \"a/%x\": unknown placeholder '%x'"));
        CHECK(anyContains(errors, "publish[3] \"a/%\": '%' at the end"));
        CHECK(anyContains(errors, "publish[4]"));
        CHECK(anyContains(errors, "subscribe[0] \"$share/g/a\""));
        CHECK(anyContains(errors, "deny_publish[0] \"\": empty topic filter"));
        CHECK_FALSE(anyContains(errors, "deny_subscribe"));
    }
    SECTION("duplicate and unnamed roles") {
        PolicySpec spec;
        spec.roles.push_back(role("r", {"a"}, {}));
        spec.roles.push_back(role("r", {"b"}, {}));
        spec.roles.push_back(role("", {"c"}, {}));
        const auto errors = compileErrors(spec);
        CHECK(anyContains(errors, "role \"r\" is defined more than once"));
        CHECK(anyContains(errors, "empty name"));
    }
    SECTION("too deep") {
        std::string deep = "a";
        for (size_t i = 0; i < TopicTrie::kMaxLevels; ++i) deep += "/a";
        PolicySpec spec;
        spec.roles.push_back(role("r", {deep}, {}));
        CHECK(anyContains(compileErrors(spec), "deeper than"));
    }
    SECTION("errors are appended, not replaced") {
        PolicySpec spec;
        spec.defaultRoles = {"nope"};
        std::vector<std::string> errors = {"earlier"};
        CHECK_FALSE(Policy::compile(spec, errors));
        CHECK(errors.size() == 2);
        CHECK(errors[0] == "earlier");
    }
}

TEST_CASE("Policy: deny beats allow, first rule in config order", "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"a", "b"};
    spec.roles.push_back(role("a", {"x/+", "x/#"}, {"x/#"}, {}, {}));
    spec.roles.push_back(role("b", {"#"}, {"#"}, {"x/secret", "x/+/deep/#"}, {"x/secret/#"}));
    auto policy = compileOk(spec);
    auto r = policy->rightsFor("anyone", "cid");
    CHECK(r->roles() == std::vector<std::string>{"a", "b"});

    CHECK(r->checkPublish("x/y").describe() == "role a publish[0]");
    CHECK(r->checkPublish("x/y/z").describe() == "role a publish[1]");
    CHECK(r->checkPublish("other").describe() == "role b publish[0]");
    // A deny in a later role still beats an allow in an earlier one.
    CHECK(r->checkPublish("x/secret").describe() == "role b deny_publish[0]");
    CHECK(r->checkPublish("x/1/deep").describe() == "role b deny_publish[1]");
    CHECK_FALSE(r->checkPublish("x/1/deep/er").allowed);
    CHECK(r->checkPublish("$SYS/x").describe() == "default deny");

    // Subscriptions are judged by everything they could deliver.
    CHECK(r->checkSubscribe("x/#").describe() == "role b deny_subscribe[0]");
    CHECK(r->checkSubscribe("+/secret").describe() == "role b deny_subscribe[0]");
    CHECK(r->checkSubscribe("x/+/y").describe() == "role b deny_subscribe[0]");
    CHECK(r->checkSubscribe("x/public/#").describe() == "role a subscribe[0]");
    CHECK(r->checkSubscribe("y/#").describe() == "role b subscribe[0]");
    CHECK(r->checkSubscribe("x/secretive").describe() == "role a subscribe[0]");
    // Deliveries are judged topic by topic.
    CHECK(r->checkDelivery("x/secret/1").describe() == "role b deny_subscribe[0]");
    CHECK(r->checkDelivery("x/secret").describe() == "role b deny_subscribe[0]");
    CHECK(r->checkDelivery("x/public").describe() == "role a subscribe[0]");
    CHECK_FALSE(r->checkDelivery("$SYS/x").allowed);
}

TEST_CASE("Policy: shared subscriptions are checked by their inner filter", "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"r"};
    spec.roles.push_back(role("r", {}, {"jobs/#"}, {}, {"jobs/admin/#"}));
    auto r = compileOk(spec)->rightsFor("w", "w");
    CHECK(r->checkSubscribe("$share/workers/jobs/queue/+").describe() == "role r subscribe[0]");
    // `jobs/+` would deliver `jobs/admin` (the parent level of `jobs/admin/#`).
    CHECK(r->checkSubscribe("$share/workers/jobs/+").describe() == "role r deny_subscribe[0]");
    CHECK(r->checkSubscribe("$share/workers/jobs/#").describe() == "role r deny_subscribe[0]");
    CHECK_FALSE(r->checkSubscribe("$share/workers/other").allowed);
    CHECK_FALSE(r->checkSubscribe("$share/workers").allowed);
    CHECK_FALSE(r->checkSubscribe("$share//jobs/a").allowed);
    CHECK_FALSE(r->checkSubscribe("$share/+/jobs/a").allowed);
    CHECK_FALSE(r->checkSubscribe("$share/g/").allowed);
}

TEST_CASE("Policy: invalid inputs are denied by default", "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"all"};
    spec.roles.push_back(role("all", {"#"}, {"#"}));
    auto r = compileOk(spec)->rightsFor("x", "y");
    CHECK_FALSE(r->checkPublish("").allowed);
    CHECK_FALSE(r->checkPublish("a/+").allowed);
    CHECK_FALSE(r->checkPublish("a/#").allowed);
    CHECK_FALSE(r->checkPublish(std::string_view("a\0b", 3)).allowed);
    CHECK_FALSE(r->checkSubscribe("").allowed);
    CHECK_FALSE(r->checkSubscribe("a/#/b").allowed);
    CHECK_FALSE(r->checkSubscribe("a+").allowed);
    CHECK_FALSE(r->checkDelivery("a/+").allowed);
    CHECK(r->checkPublish("a").describe() == "role all publish[0]");
    CHECK(r->checkSubscribe("#").allowed);
    CHECK_FALSE(r->checkSubscribe("$SYS/#").allowed);  // `#` does not reach `$` topics
}

TEST_CASE("Policy: placeholders", "[policy][placeholder]") {
    PolicySpec spec;
    spec.defaultRoles = {"dev"};
    spec.roles.push_back(role("dev", {"devices/%u/#", "clients/%c", "mixed/%u-%c/x", "%u/own"},
                              {"devices/%u/commands/#"}, {"devices/%u/locked", "shared/%c/#"},
                              {"devices/%u/commands/secret"}));
    auto policy = compileOk(spec);

    SECTION("ordinary values") {
        auto r = policy->rightsFor("d1", "c1");
        CHECK(r->checkPublish("devices/d1/x").describe() == "role dev publish[0]");
        CHECK(r->checkPublish("clients/c1").describe() == "role dev publish[1]");
        CHECK(r->checkPublish("mixed/d1-c1/x").describe() == "role dev publish[2]");
        CHECK(r->checkPublish("d1/own").describe() == "role dev publish[3]");
        CHECK(r->checkPublish("devices/d1/locked").describe() == "role dev deny_publish[0]");
        CHECK(r->checkPublish("shared/c1/z").describe() == "role dev deny_publish[1]");
        CHECK_FALSE(r->checkPublish("devices/d2/x").allowed);
        CHECK_FALSE(r->checkPublish("clients/c2").allowed);
        CHECK(r->checkSubscribe("devices/d1/commands/run/#").allowed);
        CHECK_FALSE(r->checkSubscribe("devices/d1/commands/+").allowed);  // would get `secret`
        CHECK(r->checkSubscribe("devices/d1/commands/#").describe() ==
              "role dev deny_subscribe[0]");
        CHECK(r->hasAnyRights());
    }

    SECTION("injection attempts through the identity never widen an allow rule") {
        for (std::string identity : {"a/b", "+", "#", "", "a+", "x#y", "/"}) {
            INFO("identity '" << identity << "'");
            auto r = policy->rightsFor(identity, "c1");
            // Nothing under devices/ is grantable: the %u allow rules are dropped.
            CHECK_FALSE(r->checkPublish("devices/a/b/x").allowed);
            CHECK_FALSE(r->checkPublish("devices/a/x").allowed);
            CHECK_FALSE(r->checkPublish("devices/other/x").allowed);
            CHECK_FALSE(r->checkPublish("devices//x").allowed);
            CHECK_FALSE(r->checkPublish("devices/x").allowed);
            CHECK_FALSE(r->checkSubscribe("devices/+/commands/#").allowed);
            CHECK_FALSE(r->checkSubscribe("devices/#").allowed);
            CHECK_FALSE(r->checkPublish("b/own").allowed);
            CHECK_FALSE(r->checkPublish("own").allowed);
            CHECK_FALSE(r->checkPublish("/own").allowed);
            // The identity-free rule still works.
            CHECK(r->checkPublish("clients/c1").allowed);
            // Deny rules do not disappear: the unsafe level denies for everyone.
            CHECK(r->checkPublish("devices/zzz/locked").describe() == "role dev deny_publish[0]");
        }
    }

    SECTION("injection through the client id") {
        for (std::string cid : {"a/b", "+", "#", ""}) {
            INFO("client id '" << cid << "'");
            auto r = policy->rightsFor("d1", cid);
            CHECK_FALSE(r->checkPublish("clients/a/b").allowed);
            CHECK_FALSE(r->checkPublish("clients/x").allowed);
            CHECK_FALSE(r->checkPublish("mixed/d1-/x").allowed);
            CHECK_FALSE(r->checkPublish("mixed/d1-a/x").allowed);
            // Deny `shared/%c/#` widened to `shared/+/#`.
            CHECK(r->checkPublish("shared/anything/z").describe() == "role dev deny_publish[1]");
            CHECK(r->checkPublish("devices/d1/x").allowed);
        }
    }

    SECTION("a placeholder cannot create a `$` first level for an allow rule") {
        auto r = policy->rightsFor("$SYS", "c");
        CHECK_FALSE(r->checkPublish("$SYS/own").allowed);
        CHECK(r->checkPublish("devices/$SYS/x").allowed);  // not at the first level: harmless
    }

    SECTION("only placeholder rules, all dropped: no rights") {
        PolicySpec s;
        s.defaultRoles = {"p"};
        s.roles.push_back(role("p", {"d/%u"}, {"d/%u/#"}));
        auto pol = compileOk(s);
        CHECK_FALSE(pol->rightsFor("a/b", "c")->hasAnyRights());
        CHECK(pol->rightsFor("ok", "c")->hasAnyRights());
    }
}

TEST_CASE("Policy: placeholder rules mixed with static rules keep config order", "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"r1", "r2"};
    spec.roles.push_back(role("r1", {"t/%u", "t/+"}, {}));
    spec.roles.push_back(role("r2", {"t/#", "u/%c"}, {}));
    auto policy = compileOk(spec);
    auto r = policy->rightsFor("me", "cid");
    CHECK(r->checkPublish("t/me").describe() == "role r1 publish[0]");
    CHECK(r->checkPublish("t/you").describe() == "role r1 publish[1]");
    CHECK(r->checkPublish("t/a/b").describe() == "role r2 publish[0]");
    CHECK(r->checkPublish("u/cid").describe() == "role r2 publish[1]");
}

TEST_CASE("Policy: identities, roles and shared rights", "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"reader", "reader"};  // duplicates collapse
    spec.roles.push_back(role("reader", {}, {"news/#"}));
    spec.roles.push_back(role("writer", {"news/#"}, {}));
    spec.roles.push_back(role("empty", {}, {}));
    spec.users["w"] = {"writer", "reader"};
    spec.users["nobody"] = {};
    spec.users["e"] = {"empty"};
    auto policy = compileOk(spec);

    CHECK(policy->roleExists("writer"));
    CHECK_FALSE(policy->roleExists("admin"));
    CHECK(policy->spec().roles.size() == 3);
    CHECK(policy->rolesOf("w") == std::vector<std::string>{"writer", "reader"});
    CHECK(policy->rolesOf("stranger") == std::vector<std::string>{"reader"});

    auto a = policy->rightsFor("alice", "1");
    auto b = policy->rightsFor("bob", "2");
    CHECK(a.get() == b.get());  // placeholder-free: one precomputed object
    CHECK(a->roles() == std::vector<std::string>{"reader"});
    CHECK(a->hasAnyRights());
    CHECK_FALSE(a->checkPublish("news/x").allowed);

    auto w = policy->rightsFor("w", "3");
    CHECK(w->checkPublish("news/x").describe() == "role writer publish[0]");
    CHECK(w->checkSubscribe("news/+").describe() == "role reader subscribe[0]");

    CHECK_FALSE(policy->rightsFor("nobody", "4")->hasAnyRights());
    CHECK(policy->rightsFor("nobody", "4")->roles().empty());
    CHECK_FALSE(policy->rightsFor("e", "5")->hasAnyRights());
}

TEST_CASE("Policy: rights outlive the policy handle", "[policy]") {
    std::shared_ptr<const ClientRights> shared, own;
    {
        PolicySpec spec = contractSpec();
        auto policy = compileOk(spec);
        shared = policy->rightsFor("ops-console", "x");
        own = policy->rightsFor("d9", "d9");
    }
    CHECK(shared->checkPublish("devices/a/commands/b").describe() == "role operator publish[0]");
    CHECK(own->checkPublish("devices/d9/status").describe() == "role device publish[1]");
    CHECK(own->policy().roleExists("device"));
}

TEST_CASE("Decision::describe", "[policy]") {
    Decision d;
    CHECK(d.describe() == "default deny");
    CHECK(Decision::defaultDeny().describe() == "default deny");
    CHECK_FALSE(Decision::defaultDeny().allowed);
    d.byRule = true;
    d.role = "ops";
    d.list = RuleList::DenySubscribe;
    d.index = 12;
    CHECK(d.describe() == "role ops deny_subscribe[12]");
    d.list = RuleList::Subscribe;
    CHECK(d.describe() == "role ops subscribe[12]");
    CHECK(ruleListName(RuleList::Publish) == "publish");
    CHECK(ruleListName(RuleList::DenyPublish) == "deny_publish");
}

TEST_CASE("Policy: subscriptions over a denied branch are granted and filtered", "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"r"};
    spec.roles.push_back(role("r", {}, {"#"}, {}, {"test/nosubscribe", "devices/+/secrets/#"}));
    auto r = compileOk(spec)->rightsFor("u", "u");
    using O = SubscribeOutcome;

    for (const char* f : {"#", "+/+", "test/#", "devices/#", "devices/d1/+/#"}) {
        INFO(f);
        SubscribeDecision d = r->checkSubscription(f, true);
        CHECK(d.outcome == O::GrantFiltered);
        CHECK(d.decision.describe() == "role r subscribe[0]");
        CHECK(d.withheld.list == RuleList::DenySubscribe);
        // Strict form and check_deliveries: false still refuse (nothing withholds then).
        CHECK_FALSE(r->checkSubscribe(f).allowed);
        SubscribeDecision strict = r->checkSubscription(f, false);
        CHECK(strict.outcome == O::Refuse);
        CHECK(strict.decision.list == RuleList::DenySubscribe);
    }
    CHECK(r->checkSubscription("#", true).withheld.describe() == "role r deny_subscribe[0]");
    CHECK(r->checkSubscription("devices/#", true).withheld.describe() ==
          "role r deny_subscribe[1]");

    // Entirely inside a denied branch: refused.
    for (const char* f : {"test/nosubscribe", "devices/d1/secrets/#", "devices/+/secrets/x"}) {
        INFO(f);
        SubscribeDecision d = r->checkSubscription(f, true);
        CHECK(d.outcome == O::Refuse);
        CHECK(d.decision.list == RuleList::DenySubscribe);
    }
    // Disjoint from every denied branch: a plain grant.
    CHECK(r->checkSubscription("test/other", true).outcome == O::Grant);
    CHECK(r->checkSubscription("devices/d1/status", true).outcome == O::Grant);
    // Shared subscriptions overlapping a denied branch are refused (the group would lose them).
    CHECK(r->checkSubscription("$share/g/#", true).outcome == O::Refuse);
    CHECK(r->checkSubscription("$share/g/#", true).decision.describe() ==
          "role r deny_subscribe[0]");
    CHECK(r->checkSubscription("$share/g/test/other", true).outcome == O::Grant);
    // Outside the subscribe rights: refused by default deny, as before.
    CHECK(r->checkSubscription("$SYS/#", true).outcome == O::Refuse);
    CHECK(r->checkSubscription("$SYS/#", true).decision.describe() == "default deny");
    CHECK(r->checkSubscription("a/#/b", true).outcome == O::Refuse);
}

TEST_CASE("Policy: a grant-and-filter decision agrees with the per-topic delivery check",
          "[policy]") {
    PolicySpec spec;
    spec.defaultRoles = {"r"};
    spec.roles.push_back(role("r", {}, {"devices/#"}, {}, {"devices/+/secrets/#"}));
    auto r = compileOk(spec)->rightsFor("u", "u");
    REQUIRE(r->checkSubscription("devices/#", true).outcome == SubscribeOutcome::GrantFiltered);
    CHECK(r->checkDelivery("devices/d1/status").allowed);
    CHECK_FALSE(r->checkDelivery("devices/d1/secrets").allowed);
    CHECK_FALSE(r->checkDelivery("devices/d1/secrets/key").allowed);
    CHECK(r->checkSubscription("#", true).outcome == SubscribeOutcome::Refuse);  // not covered
}

TEST_CASE("Policy: rights from roles named at connect (token roles_claim)", "[policy]") {
    auto policy = compileOk(contractSpec());
    // "operator" from the token instead of default_roles (device), placeholders still filled.
    auto ops = policy->rightsForRoles("user:ann", "c1", {"operator", "nonexistent", "operator"});
    CHECK(ops->roles() == std::vector<std::string>{"operator"});
    CHECK(ops->checkPublish("devices/d1/commands/reboot").allowed);
    CHECK_FALSE(ops->checkPublish("devices/d1/commands/firmware/x").allowed);
    CHECK_FALSE(ops->checkPublish("devices/user:ann/status").allowed);
    auto both = policy->rightsForRoles("dev7", "c1", {"device", "operator"});
    CHECK(both->checkPublish("devices/dev7/status").allowed);
    CHECK(both->checkSubscribe("devices/#").allowed);
    // No known role: the identity's own roles.
    auto none = policy->rightsForRoles("dev7", "c1", {"admin"});
    CHECK(none->roles() == std::vector<std::string>{"device"});
    auto empty = policy->rightsForRoles("ops-console", "c1", {});
    CHECK(empty->roles() == std::vector<std::string>{"operator"});
}
