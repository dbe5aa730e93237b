// `moat audit` on the password file: expensive PBKDF2 counts (finding 19.2) are flagged from
// the measured cost of one iteration; the cost is injected here so the test does not depend on
// this machine's speed.

#include <catch2/catch.hpp>

#include "AuditTestUtil.h"
#include "gateway/audit/Checks.h"

using namespace moat;
using namespace moat::audit;
using namespace moat::audit::test;

TEST_CASE("hashes that cost more than 50 ms per check are flagged", "[audit][passwd]") {
    config::Config c = cleanConfig();
    c.auth.passwordFile = writeFile("passwd-expensive",
                                    "cheap:$7$1000$c2FsdA==$aGFzaA==\n"
                                    "heavy:$7$6000000$c2FsdA==$aGFzaA==\n"
                                    "edge:$7$5000000$c2FsdA==$aGFzaA==\n");
    Findings out;
    detail::auditPasswordFile(c, out, 10.0);  // 10 ns per iteration: 6M = 60 ms, 5M = 50 ms
    REQUIRE(count(out, "expensive-password-hash") == 1);
    auto f = find(out, "expensive-password-hash");
    CHECK(f->subject == "user heavy");
    CHECK(f->severity == Finding::Severity::Medium);

    Findings fast;
    detail::auditPasswordFile(c, fast, 1.0);
    CHECK(count(fast, "expensive-password-hash") == 0);
}

TEST_CASE("the cost of one iteration is measured", "[audit][passwd]") {
    const double ns = detail::measuredPbkdf2NanosPerIteration();
    CHECK(ns > 0);
    CHECK(ns == detail::measuredPbkdf2NanosPerIteration());  // once per process
}
