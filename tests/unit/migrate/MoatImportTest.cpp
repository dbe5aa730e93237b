// The import's output is judged by Moat's own loader: it must load without errors and mean
// what the Mosquitto files meant.

#include <algorithm>
#include <catch2/catch.hpp>

#include "gateway/config/Config.h"
#include "gateway/migrate/MoatImport.h"
#include "tests/unit/migrate/TempDir.h"

using namespace moat;
using namespace moat::migrate;

namespace {

// Imports, then loads the result with Moat's loader from a file beside the inputs.
std::shared_ptr<const config::Config> importAndLoad(const TempDir& t, const std::string& conf,
                                                    std::string* yamlOut = nullptr) {
    for (const char* f : {"ca.pem", "ca.crl", "server.pem", "server.key", "passwd"})
        t.write(f, "x\n");
    std::string yaml = importMosquitto(t.write("mosquitto.conf", conf));
    if (yamlOut) *yamlOut = yaml;
    auto r = config::loadConfigFile(t.write("moat.yaml", yaml));
    std::string errors;
    for (const auto& e : r.errors) errors += e.toString() + "\n";
    INFO(yaml);
    INFO(errors);
    REQUIRE(r.config);
    return r.config;
}

const policy::RoleSpec* role(const config::Config& c, const std::string& name) {
    for (const auto& r : c.policy.roles)
        if (r.name == name) return &r;
    return nullptr;
}

}  // namespace

TEST_CASE("a TLS listener with client certificates, a password file and an ACL") {
    TempDir t;
    std::string d = t.path + "/";
    t.write("acl",
            "topic read public/#\n"
            "user alice\ntopic readwrite alice/#\ntopic deny alice/secret/#\n"
            "user ops\ntopic read $SYS/#\ntopic write devices/+/commands\n"
            "pattern read devices/%u/commands/#\npattern write devices/%c/telemetry\n");
    std::string yaml;
    auto c = importAndLoad(t,
                           "per_listener_settings false\n"
                           "persistence true\n"
                           "listener 1883 127.0.0.1\n"
                           "listener 8883\n"
                           "cafile " +
                               d + "ca.pem\ncertfile " + d + "server.pem\nkeyfile " + d +
                               "server.key\nrequire_certificate true\n"
                               "use_identity_as_username true\ncrlfile " +
                               d +
                               "ca.crl\n"
                               "tls_version tlsv1.2\n"
                               "listener 8884 0.0.0.0\ncertfile " +
                               d + "server.pem\nkeyfile " + d +
                               "server.key\n"
                               "password_file " +
                               d + "passwd\nacl_file " + d +
                               "acl\n"
                               "allow_anonymous false\nmax_keepalive 600\n"
                               "message_size_limit 1000000\nmax_inflight_messages 20\n",
                           &yaml);
    REQUIRE(c->listeners.size() == 2);  // the loopback plaintext one is the broker's side
    CHECK(c->listeners[0].bind.port == 8883);
    REQUIRE(c->listeners[0].tls);
    CHECK(c->listeners[0].tls->requireClientCert);
    CHECK(c->listeners[0].tls->crl == d + "ca.crl");
    CHECK(c->listeners[0].tls->minVersion == "1.2");
    REQUIRE(c->listeners[1].tls);
    CHECK_FALSE(c->listeners[1].tls->requireClientCert);
    CHECK(c->backend.address.toString() == "127.0.0.1:1883");
    CHECK(c->backend.credentials == config::BackendCredentials::Identity);
    CHECK(c->auth.hasMethod(config::AuthMethod::Certificate));
    CHECK(c->auth.hasMethod(config::AuthMethod::Password));
    CHECK_FALSE(c->auth.anonymous);
    CHECK(c->limits.maxKeepalive == config::Millis{600000});
    CHECK(c->limits.v3Keepalive == config::V3Keepalive::Refuse);  // as Mosquitto refuses
    CHECK(c->limits.maxPacketSize == 1000000 + 65536);
    CHECK(c->limits.maxInflight == 20);
    CHECK(c->policy.checkDeliveries);
    CHECK(c->policy.defaultRoles == std::vector<std::string>{"mosquitto-patterns"});
    const auto* patterns = role(*c, "mosquitto-patterns");
    REQUIRE(patterns);
    CHECK(patterns->subscribe == std::vector<std::string>{"devices/%u/commands/#"});
    CHECK(patterns->publish == std::vector<std::string>{"devices/%c/telemetry"});
    const auto* alice = role(*c, "user-alice");
    REQUIRE(alice);
    CHECK(alice->publish == std::vector<std::string>{"alice/#"});
    CHECK(alice->denySubscribe == std::vector<std::string>{"alice/secret/#"});
    CHECK(c->policy.users.at("alice") ==
          std::vector<std::string>{"user-alice", "mosquitto-patterns"});
    CHECK(role(*c, "user-ops")->subscribe == std::vector<std::string>{"$SYS/#"});
    // Anonymous access was off: its topic lines give no role to anybody.
    CHECK(c->policy.users.count("anonymous") == 0);
    CHECK_THAT(yaml, Catch::Contains("mosquitto.conf:2: persistence true"));
}

TEST_CASE(
    "no ACL file: every topic, as Mosquitto allowed; password-only broker keeps passthrough") {
    TempDir t;
    std::string d = t.path + "/";
    std::string yaml;
    auto c = importAndLoad(t,
                           "listener 8883\ncertfile " + d + "server.pem\nkeyfile " + d +
                               "server.key\npassword_file " + d + "passwd\n",
                           &yaml);
    CHECK(c->backend.credentials == config::BackendCredentials::Passthrough);
    CHECK(c->backend.address.toString() == "127.0.0.1:1884");  // suggested, a free port
    CHECK_THAT(yaml, Catch::Contains("listener 1884 127.0.0.1"));
    CHECK(role(*c, "all")->publish == std::vector<std::string>{"#"});
    CHECK(c->auth.methods == std::vector<config::AuthMethod>{config::AuthMethod::Password});
}

TEST_CASE("anonymous clients get the ACL's leading topic lines") {
    TempDir t;
    std::string d = t.path + "/";
    t.write("acl", "topic read public/#\nuser alice\ntopic alice/#\n");
    auto c = importAndLoad(t, "listener 8883\ncertfile " + d + "server.pem\nkeyfile " + d +
                                  "server.key\nallow_anonymous true\npassword_file " + d +
                                  "passwd\nacl_file " + d + "acl\n");
    CHECK(c->auth.anonymous);
    CHECK(c->policy.users.at("anonymous") == std::vector<std::string>{"anonymous-clients"});
    CHECK(role(*c, "anonymous-clients")->subscribe == std::vector<std::string>{"public/#"});
}

TEST_CASE("user names that are not role names are sanitised, YAML-quoted and never collide") {
    TempDir t;
    std::string d = t.path + "/";
    t.write("acl", "user a b\ntopic x\nuser a_b\ntopic y\nuser \"q\": #1\ntopic z\n");
    auto c =
        importAndLoad(t, "listener 8883\ncertfile " + d + "server.pem\nkeyfile " + d +
                             "server.key\npassword_file " + d + "passwd\nacl_file " + d + "acl\n");
    CHECK(c->policy.users.at("a b") == std::vector<std::string>{"user-a_b"});
    CHECK(c->policy.users.at("a_b") == std::vector<std::string>{"user-a_b-2"});
    CHECK(c->policy.users.count("\"q\": #1") == 1);
}

TEST_CASE("import refuses what it cannot carry over, naming the file") {
    TempDir t;
    CHECK_THROWS_WITH(importMosquitto(t.write("only-local.conf", "listener 1883 127.0.0.1\n")),
                      Catch::Contains("only-local.conf: no listener"));
    CHECK_THROWS_WITH(
        importMosquitto(t.write("noauth.conf", "listener 8883\ncertfile a\nkeyfile b\n")),
        Catch::Contains("no authentication"));
    CHECK_THROWS_WITH(importMosquitto(t.write("acl-missing.conf",
                                              "listener 8883\ncertfile a\nkeyfile b\n"
                                              "password_file p\nacl_file /nonexistent\n")),
                      Catch::Contains("cannot read /nonexistent"));
}
