// auth.token (issue #24): the section as CONTRACT §2 shows it, and its errors with lines.

#include <catch2/catch.hpp>

#include "TestFiles.h"

using namespace moat::config;
using moat::config::test::minimal;
using moat::config::test::TempDir;
using Lines = std::vector<std::string>;

TEST_CASE("auth.token loads as the contract shows it") {
    TempDir dir;
    dir.write("keys/idp-rs256.pem");
    dir.write("keys/idp.secret");
    dir.write("keys/jwks.json");
    dir.write("passwd", "");
    LoadResult r = dir.load(minimal(R"(auth:
  methods: [certificate, password, token]
  password_file: passwd
  token:
    keys: [keys/idp-rs256.pem]
    hmac_secrets: [keys/idp.secret]
    jwks_file: keys/jwks.json
    jwks_url: https://idp.example.com/.well-known/jwks.json
    jwks_refresh: 10m
    algorithms: [RS256, ES256, EdDSA, HS256]
    issuer: https://idp.example.com
    audience: moat
    identity_claim: sub
    roles_claim: roles
    leeway: 30s
    max_lifetime: 24h
    identity_prefix: "user:"
)"));
    REQUIRE(r.errors.empty());
    const auto& t = r.config->auth.token;
    REQUIRE(t);
    CHECK(r.config->auth.hasMethod(AuthMethod::Token));
    CHECK(t->keys == std::vector<std::string>{dir / "keys/idp-rs256.pem"});
    CHECK(t->hmacSecrets == std::vector<std::string>{dir / "keys/idp.secret"});
    CHECK(t->jwksFile == dir / "keys/jwks.json");
    CHECK(t->jwksUrl == "https://idp.example.com/.well-known/jwks.json");
    CHECK(t->jwksRefresh == Millis{600000});
    CHECK(t->algorithms == std::vector<std::string>{"RS256", "ES256", "EdDSA", "HS256"});
    CHECK(t->issuer == std::optional<std::string>("https://idp.example.com"));
    CHECK(t->audience == std::optional<std::string>("moat"));
    CHECK(t->rolesClaim == std::optional<std::string>("roles"));
    CHECK(t->leeway == Millis{30000});
    CHECK(t->maxLifetime == std::optional<Millis>(Millis{86400000}));
    CHECK(t->identityPrefix == "user:");
}

TEST_CASE("auth.token errors carry their lines") {
    TempDir dir;
    dir.write("k.pem");
    CHECK(dir.errors(minimal(R"(auth:
  methods: [password, token]
  require: all
  password_file: k.pem
  token:
    keys: [k.pem, missing.pem]
    jwks_url: http://idp.example.com/jwks
    algorithms: [RS256, none, XS1]
    leeway: 5
    colour: blue
)")) == Lines{
            "12: auth.require: 'all' cannot combine the password and token methods (both "
            "come in the one CONNECT password field)",
            "15: auth.token.keys[1]: cannot read '" + dir / "missing.pem" +
                "': No such file or directory",
            "16: auth.token.jwks_url: must be an https:// URL (keys fetched in the clear "
            "could be replaced on the way)",
            "17: auth.token.algorithms: \"none\" is never accepted (an unsigned token "
            "proves nothing)",
            "17: auth.token.algorithms: unknown algorithm 'XS1', expected RS256, RS384, "
            "RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384 or HS512",
            "18: auth.token.leeway: bad duration '5' (a unit is required: a duration such "
            "as 500ms, 10s, 5m, 1h or 1d)",
            "19: unknown key 'colour' in auth.token",
        });
}

TEST_CASE("auth.token and auth.methods must agree; a token section needs keys") {
    TempDir dir;
    dir.write("k.pem");
    CHECK(dir.errors(minimal("auth:\n  methods: [token]\n")) ==
          Lines{"11: auth.methods: 'token' needs an auth.token section"});
    CHECK(dir.errors(minimal("auth:\n  methods: [certificate]\n  token:\n    keys: [k.pem]\n")) ==
          Lines{"12: auth.token: set, but 'token' is not listed in auth.methods"});
    CHECK(dir.errors(minimal("auth:\n  methods: [token]\n  token:\n    audience: moat\n")) ==
          Lines{"12: auth.token: needs keys, hmac_secrets, jwks_file or jwks_url"});
    CHECK(
        dir.errors(minimal(
            "auth:\n  methods: [token]\n  token:\n    keys: [k.pem]\n    algorithms: [HS256]\n")) ==
        Lines{"12: auth.token.algorithms: lists an HS* algorithm but no hmac_secrets"});
    // certificate + token with require: all is MFA, and fine.
    dir.write("ca.pem");
    CHECK(dir.load(minimal("auth:\n  methods: [certificate, token]\n  require: any\n  token:\n    "
                           "keys: [k.pem]\n"))
              .errors.empty());
}
