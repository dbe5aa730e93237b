// The token factor in the Authenticator (CONTRACT §3 "Tokens"): which CONNECTs carry a token,
// how a token verdict combines with the certificate under `require`, v5 method "jwt".
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "gateway/inspect/Authenticator.h"
#include "gateway/mqtt/Types.h"
#include "gateway/token/Base64Url.h"

using namespace moat;
using namespace moat::inspect;
using config::AuthMethod;

namespace {

const std::string kJwtShaped =
    token::base64UrlEncode(R"({"alg":"ES256"})") + "." + token::base64UrlEncode("{}") + ".c2ln";

config::AuthConfig tokenConfig(std::vector<AuthMethod> methods,
                               config::AuthRequire require = config::AuthRequire::Any) {
    config::AuthConfig c;
    c.methods = std::move(methods);
    c.require = require;
    c.token = config::TokenAuthConfig{};
    return c;
}

token::TokenResult good(std::string id, int64_t exp = 2000) {
    token::TokenResult r;
    r.status = token::TokenStatus::Ok;
    r.identity = std::move(id);
    r.expiresAt = exp;
    return r;
}

token::TokenResult bad(std::string why) {
    token::TokenResult r;
    r.reason = std::move(why);
    return r;
}

mqtt::ConnectPacket withPassword(std::string password) {
    mqtt::ConnectPacket c;
    c.clientId = "c1";
    c.password = std::move(password);
    return c;
}

}  // namespace

TEST_CASE("a JWT-shaped password is a token; anything else stays a password") {
    auto cfg = tokenConfig({AuthMethod::Password, AuthMethod::Token});
    Authenticator auth(cfg);
    const std::string path = "/tmp/moat_unit_token_passwd_" + std::to_string(::getpid());
    std::ofstream(path) << "";
    std::vector<std::string> errors;
    auto file = policy::PasswordFile::load(path, errors);
    REQUIRE(file);
    const policy::PasswordFile& none = *file;
    auto c = withPassword(kJwtShaped);
    auto p = auth.begin(c, {}, &none);
    CHECK(p.needToken);
    CHECK_FALSE(p.needPassword);
    CHECK(p.token == kJwtShaped);
    c.username = "alice";
    c.password = "hunter2";
    p = auth.begin(c, {}, &none);
    CHECK_FALSE(p.needToken);
    CHECK(p.needPassword);
    // Without the token method a JWT-shaped password is just a password.
    auto pwOnly = tokenConfig({AuthMethod::Password});
    pwOnly.token.reset();
    c.password = kJwtShaped;
    CHECK_FALSE(Authenticator(pwOnly).begin(c, {}, &none).needToken);
}

TEST_CASE("a verified token names the identity and carries its expiry and roles") {
    auto cfg = tokenConfig({AuthMethod::Token});
    Authenticator auth(cfg);
    auto c = withPassword(kJwtShaped);
    auto p = auth.begin(c, {}, nullptr);
    auto v = good("user:alice", 1234);
    v.roles = {"operator"};
    v.ignoredRoles = {"admin"};
    auto out = auth.finishToken(std::move(p), c, {}, v);
    CHECK(out.ok);
    CHECK(out.identity == "user:alice");
    CHECK(out.tokenExpiresAt == std::optional<int64_t>(1234));
    CHECK(out.tokenRoles == std::vector<std::string>{"operator"});
    CHECK(out.ignoredRoles == std::vector<std::string>{"admin"});
    REQUIRE(out.factors.size() == 1);
    CHECK(out.factors[0].method == AuthMethod::Token);
    CHECK(out.factors[0].success);
}

TEST_CASE("a bad token is a failed factor: 0x86 with the verifier's reason") {
    auto cfg = tokenConfig({AuthMethod::Certificate, AuthMethod::Token});
    Authenticator auth(cfg);
    auto c = withPassword(kJwtShaped);
    CertFactor cert{true, std::string("dev1")};
    auto out = auth.finishToken(auth.begin(c, cert, nullptr), c, cert, bad("token expired"));
    CHECK_FALSE(out.ok);
    CHECK(out.v5Reason == mqtt::reason::BadUsernameOrPassword);
    CHECK(out.reason == "token expired");
    CHECK(out.factors.back().method == AuthMethod::Token);
    CHECK_FALSE(out.factors.back().success);
}

TEST_CASE("require: all with certificate and token: both, naming one identity") {
    auto cfg = tokenConfig({AuthMethod::Certificate, AuthMethod::Token}, config::AuthRequire::All);
    Authenticator auth(cfg);
    auto c = withPassword(kJwtShaped);
    CertFactor cert{true, std::string("alice")};
    CHECK(auth.finishToken(auth.begin(c, cert, nullptr), c, cert, good("alice")).ok);
    auto other = auth.finishToken(auth.begin(c, cert, nullptr), c, cert, good("bob"));
    CHECK_FALSE(other.ok);
    CHECK(other.v5Reason == mqtt::reason::NotAuthorized);
    CHECK(other.reason == "token identity does not match certificate identity");
    // A certificate alone is not enough.
    mqtt::ConnectPacket noToken;
    auto p = auth.begin(noToken, cert, nullptr);
    REQUIRE(p.done);
    CHECK(p.outcome.reason == "token required");
}

TEST_CASE("v5 Authentication Method jwt carries the token in Authentication Data") {
    auto cfg = tokenConfig({AuthMethod::Token});
    Authenticator auth(cfg);
    mqtt::ConnectPacket c;
    c.version = mqtt::ProtocolVersion::V5;
    c.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationMethod, "jwt"));
    c.properties.push_back(mqtt::Property::string(mqtt::prop::AuthenticationData, kJwtShaped));
    auto p = auth.begin(c, {}, nullptr);
    CHECK(p.needToken);
    CHECK(p.enhancedJwt);
    CHECK(p.token == kJwtShaped);
    // Another method keeps today's answer.
    c.properties[0].str = "SCRAM-SHA-1";
    p = auth.begin(c, {}, nullptr);
    REQUIRE(p.done);
    CHECK(p.outcome.v5Reason == mqtt::reason::BadAuthenticationMethod);
    // jwt without data.
    c.properties[0].str = "jwt";
    c.properties.pop_back();
    p = auth.begin(c, {}, nullptr);
    REQUIRE(p.done);
    CHECK(p.outcome.v5Reason == mqtt::reason::BadUsernameOrPassword);
}
