#include "AuditTestUtil.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace moat::audit::test {

namespace {

int run(const std::string& dir, const std::string& cmd) {
    const std::string full = "cd '" + dir + "' && " + cmd + " >/dev/null 2>&1";
    return std::system(full.c_str());
}

struct PkiHolder {
    Pki pki;
    PkiHolder() {
        char tmpl[] = "/tmp/moat-audit-test-XXXXXX";
        const char* d = mkdtemp(tmpl);
        if (!d) throw std::runtime_error("mkdtemp failed");
        pki.dir = d;
        const std::string& dir = pki.dir;
        std::filesystem::create_directory(dir + "/db");
        std::ofstream(dir + "/db/index.txt");
        std::ofstream(dir + "/db/serial") << "1000\n";
        std::ofstream(dir + "/db/crlnumber") << "1000\n";
        // `openssl ca` is the only CLI that sets arbitrary validity dates (expired cert,
        // stale CRL) on OpenSSL 3.0; `req -days` refuses non-positive values.
        std::ofstream(dir + "/ca.cnf") << "[ca]\ndefault_ca = d\n[d]\n"
                                          "database = ./db/index.txt\nserial = ./db/serial\n"
                                          "crlnumber = ./db/crlnumber\nnew_certs_dir = ./db\n"
                                          "default_md = sha256\npolicy = p\n"
                                          "unique_subject = no\ndefault_crl_days = 30\n"
                                          "[p]\ncommonName = supplied\n";
        const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        const std::string ca = "openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key ";
        const std::vector<std::string> cmds = {
            "openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 730 -subj /CN=test-ca",
            "openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=server",
            ca + "-in server.csr -out valid.pem -days 365",
            ca + "-in server.csr -out expiring.pem -days 10",
            ca + "-in server.csr -out expired.pem -startdate 20200101000000Z "
                 "-enddate 20200201000000Z",
            ca + "-gencrl -out fresh.crl -crldays 30",
            ca + "-gencrl -out stale.crl -crl_lastupdate 20200101000000Z "
                 "-crl_nextupdate 20200201000000Z",
        };
        for (const auto& c : cmds) {
            if (run(dir, c) != 0) throw std::runtime_error("openssl failed: " + c);
        }
        pki.caCert = dir + "/ca.pem";
        pki.validCert = dir + "/valid.pem";
        pki.expiringCert = dir + "/expiring.pem";
        pki.expiredCert = dir + "/expired.pem";
        pki.freshCrl = dir + "/fresh.crl";
        pki.staleCrl = dir + "/stale.crl";
        pki.garbage = dir + "/garbage.pem";
        std::ofstream(pki.garbage) << "not a certificate\n";
        pki.cleanPasswd = dir + "/passwd";
        std::ofstream(pki.cleanPasswd)
            << "# managed by moat passwd\n"
               "alice:$7$1000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==\n";
        pki.weakPasswd = dir + "/passwd-weak";
        std::ofstream(pki.weakPasswd)
            << "\n"
               "bob:$6$c2FsdA==$aGFzaA==\n"
               "  carol : $7$101$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==\r\n"
               "dave:$7$1000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==\n"
               "#erin:$6$c2FsdA==$aGFzaA==\n"
               "malformed line\n";
    }
    ~PkiHolder() {
        std::error_code ec;
        std::filesystem::remove_all(pki.dir, ec);
    }
};

}  // namespace

const Pki& pki() {
    static PkiHolder holder;
    return holder.pki;
}

std::string writeFile(const std::string& name, const std::string& content) {
    const std::string path = pki().dir + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

config::Config cleanConfig() {
    const Pki& p = pki();
    config::Config c;
    c.path = p.dir + "/moat.yaml";
    config::ListenerConfig l;
    l.name = "mqtts";
    l.bind = {"0.0.0.0", 8883};
    config::TlsConfig tls;
    tls.cert = p.validCert;
    tls.key = p.dir + "/server.key";
    tls.clientCa = p.caCert;
    tls.crl = p.freshCrl;
    tls.requireClientCert = true;
    tls.ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
    l.tls = tls;
    c.listeners.push_back(l);
    c.backend.address = {"127.0.0.1", 1883};
    c.auth.passwordFile = p.cleanPasswd;

    policy::RoleSpec device;
    device.name = "device";
    device.publish = {"devices/%u/telemetry/#", "devices/%u/status"};
    device.subscribe = {"devices/%u/commands/#"};
    policy::RoleSpec op;
    op.name = "operator";
    op.publish = {"devices/+/commands/#"};
    op.subscribe = {"devices/#", "$SYS/broker/clients/#"};
    op.denyPublish = {"devices/+/commands/firmware/#"};
    c.policy.defaultRoles = {"device"};
    c.policy.roles = {device, op};
    c.policy.users = {{"ops-console", {"operator"}}};
    return c;
}

std::chrono::system_clock::time_point now() {
    return std::chrono::system_clock::now();
}

std::optional<Finding> find(const std::vector<Finding>& findings, std::string_view id) {
    for (const auto& f : findings)
        if (f.id == id) return f;
    return std::nullopt;
}

size_t count(const std::vector<Finding>& findings, std::string_view id) {
    size_t n = 0;
    for (const auto& f : findings) n += f.id == id;
    return n;
}

bool hasHigh(const std::vector<Finding>& findings) {
    for (const auto& f : findings)
        if (f.severity == Finding::Severity::High) return true;
    return false;
}

}  // namespace moat::audit::test
