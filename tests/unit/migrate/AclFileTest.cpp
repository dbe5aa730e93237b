#include <catch2/catch.hpp>

#include "gateway/migrate/MosquittoConf.h"
#include "tests/unit/migrate/TempDir.h"

using namespace moat::migrate;

TEST_CASE("ACL: anonymous lines, user blocks, patterns and access words") {
    TempDir t;
    auto acl = parseAclFile(t.write("acl",
                                    "# anonymous clients\n"
                                    "topic read public/#\n"
                                    "\n"
                                    "user alice\n"
                                    "topic readwrite alice/#\n"
                                    "topic deny alice/secret\n"
                                    "topic sensors/with space\n"
                                    "user bob smith\n"
                                    "topic write bob/in\n"
                                    "pattern read devices/%u/commands/#\n"
                                    "pattern write devices/%c/telemetry\n"));
    REQUIRE(acl.anonymous.size() == 1);
    CHECK(acl.anonymous[0].access == AclAccess::Read);
    REQUIRE(acl.users.size() == 2);
    CHECK(acl.users[0].first == "alice");
    REQUIRE(acl.users[0].second.size() == 3);
    CHECK(acl.users[0].second[1].access == AclAccess::Deny);
    CHECK(acl.users[0].second[2].access == AclAccess::ReadWrite);  // access word omitted
    CHECK(acl.users[0].second[2].topic == "sensors/with space");
    CHECK(acl.users[1].first == "bob smith");
    REQUIRE(acl.patterns.size() == 2);  // patterns apply to everyone, wherever they appear
    CHECK(acl.patterns[1].topic == "devices/%c/telemetry");
    CHECK(acl.patterns[1].access == AclAccess::Write);
}

TEST_CASE("ACL: unknown line kinds are errors with file and line") {
    TempDir t;
    CHECK_THROWS_WITH(parseAclFile(t.write("acl", "user a\ntopic read x\ngroup admins\n")),
                      Catch::Contains("acl:3: expected 'user', 'topic' or 'pattern'"));
    CHECK_THROWS_WITH(parseAclFile(t.write("acl2", "user\n")), Catch::Contains("acl2:1: user"));
}
