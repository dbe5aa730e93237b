#include <catch2/catch.hpp>

#include "gateway/migrate/MosquittoConf.h"
#include "tests/unit/migrate/TempDir.h"

using namespace moat::migrate;

TEST_CASE(
    "listeners carry their own TLS options; options before any listener go to the default one") {
    TempDir t;
    auto conf = parseMosquittoConf(t.write("m.conf",
                                           "# comment\n"
                                           "port 1883\n"
                                           "bind_address 127.0.0.1\n"
                                           "listener 8883\n"
                                           "cafile /etc/ca.pem\n"
                                           "certfile /etc/server.pem\n"
                                           "keyfile /etc/server.key\n"
                                           "require_certificate true\n"
                                           "use_identity_as_username true\n"
                                           "crlfile /etc/ca.crl\n"
                                           "tls_version tlsv1.3\n"
                                           "max_connections 500\n"
                                           "listener 8884 ::1\n"
                                           "certfile /etc/s2.pem\n"
                                           "keyfile /etc/s2.key\n"));
    REQUIRE(conf.listeners.size() == 3);
    CHECK(conf.listeners[0].port == 1883);
    CHECK(conf.listeners[0].address == "127.0.0.1");
    CHECK_FALSE(conf.listeners[0].isTls());
    CHECK(conf.listeners[0].isLoopback());
    const auto& tls = conf.listeners[1];
    CHECK(tls.port == 8883);
    CHECK(tls.address.empty());
    CHECK(tls.cafile == "/etc/ca.pem");
    CHECK(tls.requireCertificate);
    CHECK(tls.useIdentityAsUsername);
    CHECK(tls.crlfile == "/etc/ca.crl");
    CHECK(tls.tlsVersion == "tlsv1.3");
    CHECK(tls.maxConnections == 500);
    CHECK(conf.listeners[2].address == "::1");
    CHECK(conf.listeners[2].certfile == "/etc/s2.pem");
    CHECK(conf.listeners[1].where.line == 4);
}

TEST_CASE("per_listener_settings decides where password_file, acl_file and allow_anonymous apply") {
    TempDir t;
    std::string text =
        "listener 8883\ncertfile a\nkeyfile b\npassword_file /p1\nacl_file /a1\n"
        "listener 8884\ncertfile a\nkeyfile b\npassword_file /p2\nallow_anonymous true\n";
    auto global = parseMosquittoConf(t.write("g.conf", text));
    CHECK(global.authFor(0).passwordFile == "/p2");  // last one wins, for every listener
    CHECK(global.authFor(0).allowAnonymous == true);
    auto per = parseMosquittoConf(t.write("p.conf", "per_listener_settings true\n" + text));
    CHECK(per.authFor(0).passwordFile == "/p1");
    CHECK(per.authFor(0).aclFile == "/a1");
    CHECK_FALSE(per.authFor(0).allowAnonymous.has_value());
    CHECK(per.authFor(1).passwordFile == "/p2");
    CHECK_FALSE(per.authFor(1).aclFile.has_value());
}

TEST_CASE("options without an equivalent are kept with file, line and a reason") {
    TempDir t;
    auto conf = parseMosquittoConf(
        t.write("m.conf",
                "persistence true\nlistener 8883\ncertfile a\nkeyfile b\nplugin /x.so\n"
                "connection bridge1\nuse_subject_as_username true\nlistener 0 /run/m.sock\n"));
    REQUIRE(conf.unmapped.size() == 5);
    CHECK(conf.unmapped[0].key == "persistence");
    CHECK(conf.unmapped[0].where.line == 1);
    CHECK_THAT(conf.unmapped[0].why, Catch::Contains("broker"));
    CHECK(conf.unmapped[1].key == "plugin");
    CHECK(conf.unmapped[2].key == "connection");
    CHECK(conf.unmapped[3].key == "use_subject_as_username");
    CHECK(conf.unmapped[4].key == "listener");
}

TEST_CASE("include_dir files are read in sorted order, as if inline") {
    TempDir t;
    t.write("conf.d/20-tls.conf", "certfile /c\nkeyfile /k\n");
    t.write("conf.d/10-listener.conf", "listener 8883\n");
    t.write("conf.d/readme.txt", "not a conf file\n");
    auto conf = parseMosquittoConf(t.write("m.conf", "include_dir " + t.path + "/conf.d\n"));
    REQUIRE(conf.listeners.size() == 1);
    CHECK(conf.listeners[0].certfile == "/c");
    CHECK(conf.listeners[0].where.file == t.path + "/conf.d/10-listener.conf");
}

TEST_CASE("what cannot be read is an error naming file and line") {
    TempDir t;
    auto fails = [&](const std::string& text, const std::string& want) {
        std::string p = t.write("bad.conf", text);
        try {
            parseMosquittoConf(p);
            FAIL("no error for: " << text);
        } catch (const ImportError& e) {
            CHECK_THAT(e.what(), Catch::Contains(want));
        }
    };
    fails("listener 8883\nrequire_certificate yes\n", "bad.conf:2: require_certificate");
    fails("listener eighty\n", "bad.conf:1: listener");
    fails("\n\ninclude_dir /nonexistent/dir\n", "bad.conf:3: include_dir /nonexistent/dir");
    fails("max_keepalive\n", "bad.conf:1: max_keepalive: missing value");
    CHECK_THROWS_WITH(parseMosquittoConf(t.path + "/missing.conf"), Catch::Contains("cannot read"));
}
