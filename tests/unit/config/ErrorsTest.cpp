// One test per kind of configuration error, asserting the exact "line: message" reported
// (TempDir::errors checks that each error names the config file).

#include <catch2/catch.hpp>

#include "TestFiles.h"

using namespace moat::config;
using moat::config::test::minimal;
using moat::config::test::TempDir;
using moat::config::test::yaml;
using Lines = std::vector<std::string>;

TEST_CASE("YAML syntax errors carry their line") {
    TempDir dir;
    CHECK(dir.errors("listeners:\n  - name: a\n    bind: [1, 2\nbackend: {}\n") ==
          Lines{"4: YAML syntax error: end of sequence flow not found"});
    CHECK(dir.errors("a: 1\n b: 2\n") == Lines{"2: YAML syntax error: illegal map value"});
    CHECK(dir.errors("a: &x 1\nb: *y\n") ==
          Lines{"2: YAML syntax error: the referenced anchor is not defined"});
    CHECK(dir.errors("a: 1\nb: \"x\\q\"\n") ==
          Lines{"2: YAML syntax error: unknown escape character: q"});
    CHECK(dir.errors(minimal() + "---\nlisteners: []\n") ==
          Lines{"10: more than one YAML document ('---'): a configuration is a single document"});
}

TEST_CASE("input that sends yaml-cpp's document loop round forever is refused") {
    // Found by fuzz_config: YAML::LoadAll never returns on this; the loader must.
    TempDir dir;
    Lines errors = dir.errors(
        ",isteners:\n  - naie: plain\n    bind: 127..0.01:18V4\nbac: plain\n"
        "    bind: 127..0.01:: [\"a/#!]\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("more than one YAML document") != std::string::npos);
}

TEST_CASE("an empty file or a non-mapping root") {
    TempDir dir;
    CHECK(dir.errors("") == Lines{"1: the configuration is empty (expected a mapping with "
                                  "listeners, backend and policy)"});
    CHECK(dir.errors("# only a comment\n") == Lines{"1: the configuration is empty (expected a "
                                                    "mapping with listeners, backend and policy)"});
    CHECK(dir.errors("- a\n- b\n") ==
          Lines{"1: the configuration must be a mapping of sections, not a list or a value"});
}

TEST_CASE("missing required keys") {
    TempDir dir;
    CHECK(dir.errors("limits: {}\n") == Lines{"1: missing required key 'listeners' at top level",
                                              "1: missing required key 'backend' at top level",
                                              "1: missing required key 'policy' at top level"});
    CHECK(dir.errors(yaml(R"(
listeners:
  - name: a
backend:
  connect_timeout: 1s
policy: {}
)")) == Lines{"2: missing required key 'bind' in listeners[0]",
              "3: missing required key 'address' in backend"});
    CHECK(dir.errors("listeners: []\nbackend: {address: 'h:1'}\npolicy:\n") ==
          Lines{"1: listeners: at least one listener is required"});
}

TEST_CASE("unknown keys are errors in every section, with a suggestion for near misses") {
    TempDir dir;
    dir.writeContractFiles();
    CHECK(dir.errors(minimal("foo: 1\n")) == Lines{"10: unknown key 'foo' at top level"});
    CHECK(dir.errors(minimal("limit: {}\n")) ==
          Lines{"10: unknown key 'limit' at top level (did you mean 'limits'?)"});
    CHECK(dir.errors(yaml(R"(
listeners:
  - name: a
    bind: 127.0.0.1:1884
    foo: bar
    tls:
      cert: certs/server.pem
      key: certs/server.key
      client_ca: certs/ca.pem
      requre_client_cert: true
backend:
  address: 127.0.0.1:1883
  timeout: 5s
auth:
  method: [password]
policy:
  roles:
    r:
      publsh: [a]
  extra: 1
limits: {max_conections: 1}
bans: {x: 1}
integrity:
  rules:
    - topics: [a]
      key: certs/ca.pem
      maxage: 1s
  y: 2
cluster: {redis_url: x}
metrics: {port: 1}
audit: {file: x}
anomaly: {z: 1}
)")) == Lines{
            "4: unknown key 'foo' in listeners[0]",
            "9: unknown key 'requre_client_cert' in listeners[0].tls (did you mean "
            "'require_client_cert'?)",
            "12: unknown key 'timeout' in backend",
            "14: unknown key 'method' in auth (did you mean 'methods'?)",
            "18: unknown key 'publsh' in policy.roles.r (did you mean 'publish'?)",
            "19: unknown key 'extra' in policy",
            "20: unknown key 'max_conections' in limits (did you mean 'max_connections'?)",
            "21: unknown key 'x' in bans",
            "26: unknown key 'maxage' in integrity.rules[0] (did you mean 'max_age'?)",
            "27: unknown key 'y' in integrity",
            "28: unknown key 'redis_url' in cluster",
            "29: unknown key 'port' in metrics",
            "30: unknown key 'file' in audit",
            "31: unknown key 'z' in anomaly",
        });
}

TEST_CASE("duplicate keys") {
    TempDir dir;
    CHECK(dir.errors(minimal("limits:\n  max_connections: 1\n  max_connections: 2\n")) ==
          Lines{"12: duplicate key 'max_connections' in limits (first on line 11)"});
}

TEST_CASE("wrong types") {
    TempDir dir;
    CHECK(dir.errors(yaml(R"(
listeners:
  name: a
backend: 127.0.0.1:1883
policy:
  roles: [a, b]
  default_roles: device
)")) == Lines{"1: listeners: expected a list, got a mapping",
              "3: backend: expected a mapping, got a single value",
              "5: policy.roles: expected a mapping, got a list",
              "6: policy.default_roles: expected a list, got a single value"});
    CHECK(dir.errors(minimal("limits:\n  max_connections: [1]\n  publish_rate:\n")) ==
          Lines{"11: limits.max_connections: expected an integer 1..4294967295 or 'unlimited', "
                "got a list",
                "12: limits.publish_rate: missing value (expected a rate such as 100/s, 6000/m "
                "or 5/10s, or 'unlimited')"});
    CHECK(dir.errors(minimal("metrics:\n  enabled: maybe\n")) ==
          Lines{"11: metrics.enabled: bad value 'maybe' (expected true or false)"});
}

TEST_CASE("bad durations, sizes and rates say what is allowed") {
    TempDir dir;
    CHECK(dir.errors(minimal(yaml(R"(
limits:
  handshake_timeout: 10
  drain_timeout: 10 s
  max_packet_size: 1GB
  max_subscriptions: -1
  publish_rate: 100/sec
  publish_bytes_rate: fast
  connection_rate_per_ip: 1MiB/s
  max_keepalive: 70000s
bans:
  window: 0s
)"))) == Lines{
             "11: limits.handshake_timeout: bad duration '10' (a unit is required: a "
             "duration such as 500ms, 10s, 5m, 1h or 1d)",
             "12: limits.drain_timeout: bad duration '10 s' (a duration such as 500ms, 10s, "
             "5m, 1h or 1d)",
             "13: limits.max_packet_size: '1GB' is out of range (16..268435460 bytes)",
             "14: limits.max_subscriptions: bad value '-1' (expected an integer "
             "1..4294967295 or 'unlimited')",
             "15: limits.publish_rate: bad rate '100/sec' (expected a rate such as 100/s, "
             "6000/m or 5/10s, or 'unlimited')",
             "16: limits.publish_bytes_rate: bad rate 'fast' (expected a rate such as "
             "1MiB/s, 64KiB/s or 100KB/m, or 'unlimited')",
             "17: limits.connection_rate_per_ip: '1MiB/s' is a byte rate; expected a count "
             "such as 100/s",
             "18: limits.max_keepalive: must be whole seconds, at most 65535s (MQTT "
             "keepalive is a 16-bit number of seconds)",
             "20: bans.window: must be at least 1ms",
         });
    CHECK(dir.errors(minimal("bans:\n  duration: 1h\n  max_duration: 5m\n")) ==
          Lines{"12: bans.max_duration: must be at least bans.duration"});
}

TEST_CASE("bad enum values list the allowed ones") {
    TempDir dir;
    CHECK(dir.errors(yaml(R"(
listeners:
  - bind: 127.0.0.1:1884
    proxy_protocol: v3
    workers: 0
  - bind: 127.0.0.1:1885
    workers: 257
backend:
  address: 127.0.0.1:1883
  credentials: username
  proxy_protocol: v1
auth:
  methods: [certificate, otp]
  require: some
  identity_from: cert_ou
  client_id: prefix
policy:
  on_publish_denied: reject
)")) == Lines{
            "3: listeners[0].proxy_protocol: bad value 'v3' (expected off, v1, v2 or any)",
            "4: listeners[0].workers: bad value '0' (expected auto or an integer 1..256)",
            "6: listeners[1].workers: bad value '257' (expected auto or an integer 1..256)",
            "9: backend.credentials: bad value 'username' (expected identity, passthrough "
            "or strip)",
            "10: backend.proxy_protocol: bad value 'v1' (expected off or v2)",
            "12: auth.methods[1]: bad value 'otp' (expected certificate, password or token)",
            "13: auth.require: bad value 'some' (expected any or all)",
            "14: auth.identity_from: bad value 'cert_ou' (expected cert_cn, cert_san_dns, "
            "cert_san_uri or cert_san_email)",
            "15: auth.client_id: bad value 'prefix' (expected any, identity or "
            "identity_prefix)",
            "17: policy.on_publish_denied: bad value 'reject' (expected drop or disconnect)",
        });
}

TEST_CASE("TLS rules: min_version, client CA, files that cannot be read") {
    TempDir dir;
    dir.writeContractFiles();
    dir.mkdir("certs/dir.pem");
    CHECK(dir.errors(yaml(R"(
listeners:
  - bind: 127.0.0.1:1884
    tls:
      cert: certs/missing.pem
      key: certs/dir.pem
      require_client_cert: true
      min_version: 1.1
  - bind: 127.0.0.1:1885
    tls:
      cert: certs/server.pem
      key: certs/server.key
      crl: certs/ca.crl
backend: {address: "127.0.0.1:1883"}
policy: {}
)")) == Lines{
            "4: listeners[0].tls.cert: cannot read '" + dir / "certs/missing.pem" +
                "': No such file or directory",
            "5: listeners[0].tls.key: cannot read '" + dir / "certs/dir.pem" + "': is a directory",
            "6: listeners[0].tls.require_client_cert: true needs client_ca (the CA that "
            "signs client certificates)",
            "7: listeners[0].tls.min_version: bad value '1.1' (expected 1.2 or 1.3)",
            "9: listeners[1].tls: require_client_cert is true by default and needs "
            "client_ca; set client_ca, or require_client_cert: false",
            "12: listeners[1].tls.crl: a CRL needs client_ca (it revokes client "
            "certificates)",
        });
}

TEST_CASE("listeners: duplicate names and clashing binds, CIDRs, PROXY protocol") {
    TempDir dir;
    CHECK(dir.errors(yaml(R"(
listeners:
  - name: a
    bind: 0.0.0.0:1884
  - name: a
    bind: 127.0.0.1:1884
  - name: "b c"
    bind: "[::]:1885"
  - name: d
    bind: "[0::0]:1885"
    proxy_protocol: v1
  - name: e
    bind: 127.0.0.1:1886
    proxy_protocol: v2
    trusted_proxies: [10.1.2.3/8, example.com, 10.0.0.0/40]
backend: {address: "127.0.0.1:1883"}
policy: {}
)")) == Lines{
            "4: listeners[1].name: duplicate listener name 'a' (also listeners[0], line 2)",
            "5: listeners[1].bind: 127.0.0.1:1884 clashes with listeners[0].bind "
            "0.0.0.0:1884 (line 3)",
            "6: listeners[2].name: bad name 'b c' (use letters, digits, '.', '_' and '-', "
            "at most 64)",
            "9: listeners[3].bind: [::]:1885 clashes with listeners[2].bind [::]:1885 "
            "(line 7)",
            "10: listeners[3].proxy_protocol: a PROXY header is expected but "
            "trusted_proxies is empty, so every connection would be refused",
            "14: listeners[4].trusted_proxies[0]: bad CIDR '10.1.2.3/8': host bits are set "
            "(did you mean 10.0.0.0/8?)",
            "14: listeners[4].trusted_proxies[1]: bad CIDR 'example.com': 'example.com' is "
            "not an IPv4 or IPv6 address",
            "14: listeners[4].trusted_proxies[2]: bad CIDR '10.0.0.0/40': bad prefix length "
            "(expected /0../32)",
        });
    CHECK(dir.errors(yaml(R"(
listeners:
  - bind: "::1:1884"
  - bind: localhost
backend: {address: "127.0.0.1:0"}
policy: {}
)")) == Lines{
            "2: listeners[0].bind: bad address '::1:1884' (expected host:port such as "
            "0.0.0.0:8883, [::]:8883 or localhost:1883; IPv6 addresses go in brackets)",
            "3: listeners[1].bind: bad address 'localhost' (expected host:port such as "
            "0.0.0.0:8883, [::]:8883 or localhost:1883)",
            "4: backend.address: port 0 is not allowed here",
        });
}

TEST_CASE("auth: empty methods, require all without a password file, unreadable file") {
    TempDir dir;
    CHECK(dir.errors(minimal("auth:\n  methods: []\n")) ==
          Lines{"11: auth.methods: must not be empty unless auth.anonymous is true"});
    CHECK(dir.errors(minimal("auth:\n  methods: []\n  anonymous: true\n")).empty());
    CHECK(dir.errors(minimal("auth:\n  methods: [password]\n  require: all\n")) ==
          Lines{"12: auth.require: 'all' with the password method needs auth.password_file"});
    CHECK(dir.errors(minimal("auth:\n  methods: [password, password]\n")) ==
          Lines{"11: auth.methods[1]: 'password' is listed twice"});
    CHECK(dir.errors(minimal("auth:\n  methods: [password]\n  password_file: nope\n")) ==
          Lines{"12: auth.password_file: cannot read '" + dir / "nope" +
                "': No such file or directory"});
}

TEST_CASE("policy: unknown roles, bad filters, bad placeholders, bad names") {
    TempDir dir;
    CHECK(dir.errors(yaml(R"(
listeners: [{bind: "127.0.0.1:1884"}]
backend: {address: "127.0.0.1:1883"}
policy:
  default_roles: [device, ghost]
  users:
    alice: [admin]
    bob: operator
  roles:
    device:
      publish: ["a/#/b", "devices/%u/x", "devices/%U/x", "a+"]
      subscribe: ["c/%c/#", "", "x/%d"]
      deny_publish: [[nested]]
    "bad role": {}
    operator:
      publish: ["#"]
)")) == Lines{
            "4: policy.default_roles[1]: unknown role 'ghost' (not defined in policy.roles)",
            "6: policy.users.alice[0]: unknown role 'admin' (not defined in policy.roles)",
            "7: policy.users.bob: expected a list, got a single value",
            "10: policy.roles.device.publish[0]: bad topic filter 'a/#/b': '#' must be the "
            "whole last level",
            "10: policy.roles.device.publish[2]: bad topic filter 'devices/%U/x': only %u "
            "and %c placeholders are allowed, each as a whole level",
            "10: policy.roles.device.publish[3]: bad topic filter 'a+': '+' must be a whole "
            "level",
            "11: policy.roles.device.subscribe[1]: must not be empty",
            "11: policy.roles.device.subscribe[2]: bad topic filter 'x/%d': only %u and %c "
            "placeholders are allowed, each as a whole level",
            "12: policy.roles.device.deny_publish[0]: expected a string, got a list",
            "13: policy.roles.bad role: bad role name 'bad role' (use letters, digits, '.', "
            "'_' and '-', at most 64)",
        });
}

TEST_CASE("integrity: key files, placeholders, required keys") {
    TempDir dir;
    dir.mkdir("keys");
    CHECK(dir.errors(minimal(yaml(R"(
integrity:
  rules:
    - topics: [fw/#]
      key: keys/missing.key
    - topics: [fw/#]
      key: keys/%c.key
    - topics: [fw/#]
      key: nodir/%u.key
    - algorithm: rsa
      max_age: 500ms
    - topics: []
      key: keys/%u.pem
      on_invalid: ignore
)"))) == Lines{
             "13: integrity.rules[0].key: cannot read '" + dir / "keys/missing.key" +
                 "': No such file or directory",
             "15: integrity.rules[1].key: bad key path 'keys/%c.key' (the only placeholder "
             "is %u, the identity)",
             "17: integrity.rules[2].key: key folder '" + dir / "nodir" +
                 "': No such file or directory",
             "18: missing required key 'topics' in integrity.rules[3]",
             "18: integrity.rules[3].algorithm: bad value 'rsa' (expected hmac-sha256 or "
             "ed25519)",
             "18: missing required key 'key' in integrity.rules[3]",
             "19: integrity.rules[3].max_age: must be at least 1000ms",
             "20: integrity.rules[4].topics: must list at least one topic filter",
             "22: integrity.rules[4].on_invalid: bad value 'ignore' (expected drop or "
             "disconnect)",
         });
}

TEST_CASE("tuning values") {
    TempDir dir;
    CHECK(dir.errors(minimal("tuning:\n  scheduler: fifo\n  cpu: 1\n")) ==
          Lines{
              "11: tuning.scheduler: bad value 'fifo' (expected normal or batch)",
              "12: unknown key 'cpu' in tuning",
          });
}

TEST_CASE("metrics, audit, anomaly, cluster values") {
    TempDir dir;
    CHECK(dir.errors(minimal(yaml(R"(
metrics:
  path: metrics
audit:
  log: nodir/audit.log
  max_events_per_second: 0
anomaly:
  publish_spike_factor: 0.5
  window: soon
  connection_storm: 0
cluster:
  redis: redis
)"))) == Lines{
             "11: metrics.path: bad path 'metrics' (must start with '/', without spaces, '?' "
             "or '#')",
             "13: audit.log: cannot write in '" + dir / "nodir" + "': No such file or directory",
             "14: audit.max_events_per_second: bad value '0' (expected an integer "
             "1..4294967295)",
             "16: anomaly.publish_spike_factor: bad value '0.5' (expected a number above 1)",
             "17: anomaly.window: bad duration 'soon' (a duration such as 500ms, 10s, 5m, 1h "
             "or 1d)",
             "18: anomaly.connection_storm: bad value '0' (expected an integer "
             "1..4294967295)",
             "20: cluster.redis: bad address 'redis' (expected host:port such as "
             "0.0.0.0:8883, [::]:8883 or localhost:1883)",
         });
}

TEST_CASE("cluster Redis password file") {
    TempDir dir;
    dir.write("empty.pass", "\n");
    dir.write("two.pass", "a\nb\n");
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  password_file: empty.pass\n")) ==
          Lines{"12: cluster.password_file: '" + dir / "empty.pass" +
                "' is empty (expected the Redis password)"});
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  password_file: two.pass\n")) ==
          Lines{"12: cluster.password_file: '" + dir / "two.pass" +
                "' holds more than one line (expected the Redis password)"});
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  password_file: none.pass\n")) ==
          Lines{"12: cluster.password_file: cannot read '" + dir / "none.pass" +
                "': No such file or directory"});
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  username: moat\n")) ==
          Lines{"12: cluster.username: needs cluster.password_file"});
}

TEST_CASE("cluster key file") {
    TempDir dir;
    dir.write("short.key", "0123456789abcdef\n");
    dir.write("empty.key", "\n");
    dir.write("big.key", std::string(5000, 'k'));
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  key_file: short.key\n")) ==
          Lines{"12: cluster.key_file: '" + dir / "short.key" +
                "' holds fewer than 32 bytes (make one with: openssl rand -hex 32)"});
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  key_file: empty.key\n")) ==
          Lines{"12: cluster.key_file: '" + dir / "empty.key" +
                "' is empty (expected the cluster key)"});
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  key_file: big.key\n")) ==
          Lines{"12: cluster.key_file: '" + dir / "big.key" +
                "' is larger than 4096 bytes (expected the cluster key)"});
    CHECK(dir.errors(minimal("cluster:\n  redis: 127.0.0.1:6379\n  key_file: none.key\n")) ==
          Lines{"12: cluster.key_file: cannot read '" + dir / "none.key" +
                "': No such file or directory"});
}

TEST_CASE("cross-section checks") {
    TempDir dir;
    // Only certificates are accepted, but the listener cannot verify any.
    CHECK(dir.errors(minimal("auth:\n  methods: [certificate]\n")) ==
          Lines{"2: listeners[0] 'plain': auth needs a client certificate but this listener is "
                "plaintext, so no client could ever connect"});
    CHECK(dir.errors(minimal("metrics:\n  bind: 0.0.0.0:1884\n")) ==
          Lines{"11: metrics.bind: 0.0.0.0:1884 clashes with listeners[0] 'plain' on "
                "127.0.0.1:1884 (line 2)"});
    CHECK(dir.errors(yaml(R"(
listeners:
  - bind: 0.0.0.0:1883
backend:
  address: 127.0.0.1:1883
policy: {}
)")) == Lines{"4: backend.address: 127.0.0.1:1883 is Moat's own listeners[0] 'listener-0'; it "
              "must name the broker"});
}

TEST_CASE("all problems are reported together, in line order") {
    TempDir dir;
    Lines errors = dir.errors(yaml(R"(
listeners:
  - bind: nowhere
    workers: many
backend:
  address: 127.0.0.1:1883
  connect_timeout: forever
policy:
  roles: {r: {publish: ["#/a"]}}
limits: {publish_rate: lots}
)"));
    REQUIRE(errors.size() == 5);
    CHECK(errors[0].rfind("2: listeners[0].bind: bad address", 0) == 0);
    CHECK(errors[1].rfind("3: listeners[0].workers: bad value 'many'", 0) == 0);
    CHECK(errors[2].rfind("6: backend.connect_timeout: bad duration 'forever'", 0) == 0);
    CHECK(errors[3].rfind("8: policy.roles.r.publish[0]: bad topic filter '#/a'", 0) == 0);
    CHECK(errors[4].rfind("9: limits.publish_rate: bad rate 'lots'", 0) == 0);
}

TEST_CASE("loadConfigFile: a missing or unreadable config file") {
    TempDir dir;
    LoadResult r = loadConfigFile(dir / "absent.yaml");
    CHECK_FALSE(r.config);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].toString() ==
          dir / "absent.yaml" + ": cannot read the configuration: No such file or directory");
    r = loadConfigFile(dir.path());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message == "cannot read the configuration: is a directory");
}

TEST_CASE("user values in messages are quoted and control bytes escaped") {
    TempDir dir;
    CHECK(dir.errors(minimal("limits:\n  on_exceed: \"a\\tb\\x01\"\n")) ==
          Lines{"11: limits.on_exceed: bad value 'a\\x09b\\x01' (expected throttle or "
                "disconnect)"});
}

TEST_CASE("tls.groups: known names only, none twice, canonical spelling kept") {
    TempDir dir;
    dir.writeContractFiles();
    auto withGroups = [](const std::string& groups) {
        return yaml(R"(
listeners:
  - bind: 127.0.0.1:1884
    tls:
      cert: certs/server.pem
      key: certs/server.key
      client_ca: certs/ca.pem
      groups: )") +
               groups + "\nbackend: {address: \"127.0.0.1:1883\"}\npolicy: {}\n";
    };
    Lines errors = dir.errors(withGroups("\"X25519:sect163k1\""));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].rfind("7: listeners[0].tls.groups: unknown key exchange group 'sect163k1' "
                          "(expected a ':'-separated list of X25519, X448, P-256",
                          0) == 0);
    CHECK(dir.errors(withGroups("\"X25519::P-256\"")).size() == 1);
    CHECK(dir.errors(withGroups("\"P-256:prime256v1\"")) ==
          Lines{"7: listeners[0].tls.groups: group P-256 listed twice"});
    CHECK(dir.errors(withGroups("\"\"")).size() == 1);

    LoadResult r = dir.load(withGroups("\"x25519, secp384r1:ffdhe2048\""));
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].tls->groups == "X25519:P-384:ffdhe2048");
    r = dir.load(withGroups("X25519").substr(0, withGroups("X25519").find("      groups")) +
                 "backend: {address: \"127.0.0.1:1883\"}\npolicy: {}\n");
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].tls->groups == "X25519:P-256:P-384");
}

TEST_CASE("limits.v3_keepalive: accept or refuse") {
    TempDir dir;
    CHECK(dir.errors(minimal("limits:\n  v3_keepalive: sometimes\n")) ==
          Lines{"11: limits.v3_keepalive: bad value 'sometimes' (expected accept or refuse)"});
    CHECK(dir.errors(minimal("limits:\n  v3_keepalive: refuse\n")).empty());
}

TEST_CASE("websocket: path, origins, forwarded_for, unknown keys") {
    TempDir dir;
    CHECK(dir.errors(yaml(R"(
listeners:
  - bind: 127.0.0.1:8080
    websocket:
      path: mqtt
      allowed_origins: ["https://a.example.com/", "dashboard.example.com", "https://ok.example"]
      forwarded_for: true
      compression: true
  - bind: 127.0.0.1:8081
    proxy_protocol: v2
    trusted_proxies: [10.0.0.0/8]
    websocket:
      path: "/a b"
      allowed_origins: []
      forwarded_for: true
backend: {address: "127.0.0.1:1883"}
policy: {}
)")) == Lines{
            "4: listeners[0].websocket.path: bad path 'mqtt' (expected an absolute request path "
            "such as /mqtt, without query or spaces)",
            "5: listeners[0].websocket.allowed_origins[0]: bad origin 'https://a.example.com/' "
            "(expected scheme://host[:port] as browsers send it, e.g. "
            "https://dashboard.example.com, without a path)",
            "5: listeners[0].websocket.allowed_origins[1]: bad origin 'dashboard.example.com' "
            "(expected scheme://host[:port] as browsers send it, e.g. "
            "https://dashboard.example.com, without a path)",
            "6: listeners[0].websocket.forwarded_for: true needs trusted_proxies (the balancers "
            "whose X-Forwarded-For is believed)",
            "7: unknown key 'compression' in listeners[0].websocket",
            "12: listeners[1].websocket.path: bad path '/a b' (expected an absolute request "
            "path such as /mqtt, without query or spaces)",
            "13: listeners[1].websocket.allowed_origins: empty list refuses every browser; list "
            "the dashboard origins, or leave the key out to allow any origin",
            "14: listeners[1].websocket.forwarded_for: the PROXY header already names the "
            "client; use one of proxy_protocol and forwarded_for",
        });
}
