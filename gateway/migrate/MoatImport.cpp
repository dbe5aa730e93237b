#include "gateway/migrate/MoatImport.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace moat::migrate {

namespace {

// A YAML double-quoted scalar: safe for any text (colons, '#', leading '%', spaces).
std::string q(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + q(items[i]);
    return out + "]";
}

// Comment text on one line (a value with a newline must not end the comment early).
std::string oneLine(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    return s;
}

// Moat role names: letters, digits, '.', '_' and '-', at most 64.
std::string roleNameFor(const std::string& prefix, const std::string& user,
                        std::set<std::string>& taken) {
    std::string base = prefix;
    for (unsigned char c : user) {
        base += (std::isalnum(c) || c == '.' || c == '_' || c == '-') ? static_cast<char>(c) : '_';
        if (base.size() >= 56) break;
    }
    std::string name = base;
    for (int n = 2; !taken.insert(name).second; ++n) name = base + "-" + std::to_string(n);
    return name;
}

std::string bindOf(const MosquittoListener& l) {
    std::string host = l.address.empty() ? "0.0.0.0" : l.address;
    if (host == "localhost") host = "127.0.0.1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return host + ":" + std::to_string(l.port);
}

struct RoleRules {
    std::vector<std::string> publish, subscribe, denyPublish, denySubscribe;
};

RoleRules rulesOf(const std::vector<AclRule>& rules) {
    RoleRules r;
    for (const auto& rule : rules) {
        switch (rule.access) {
            case AclAccess::Read:
                r.subscribe.push_back(rule.topic);
                break;
            case AclAccess::Write:
                r.publish.push_back(rule.topic);
                break;
            case AclAccess::ReadWrite:
                r.publish.push_back(rule.topic);
                r.subscribe.push_back(rule.topic);
                break;
            case AclAccess::Deny:
                r.denyPublish.push_back(rule.topic);
                r.denySubscribe.push_back(rule.topic);
                break;
        }
    }
    return r;
}

bool isRelative(const std::optional<std::string>& path) {
    return path && !path->empty() && (*path)[0] != '/';
}

class Renderer {
  public:
    Renderer(const MosquittoConfig& conf, const std::optional<AclFile>& acl)
        : conf_(conf), acl_(acl) {}

    std::string render() {
        chooseListeners();
        chooseAuth();
        std::ostringstream body;
        listeners(body);
        backend(body);
        auth(body);
        policy(body);
        limits(body);
        return header() + body.str();
    }

  private:
    const MosquittoConfig& conf_;
    const std::optional<AclFile>& acl_;
    std::vector<size_t> served_;          // mosquitto listeners that become Moat listeners
    std::optional<size_t> backendIndex_;  // a loopback plaintext listener Moat can dial
    std::vector<std::string> notes_;      // header remarks
    std::vector<Unmapped> unmapped_;      // what render() itself could not carry over
    AuthSettings auth_;
    bool certificateMethod_ = false;
    bool passwordMethod_ = false;

    void chooseListeners() {
        served_ = servedListeners(conf_, &unmapped_);
        for (size_t i = 0; i < conf_.listeners.size(); ++i) {
            const auto& l = conf_.listeners[i];
            // A loopback plaintext listener is already where Moat can dial the broker.
            if (l.port != 0 && l.protocol == "mqtt" && !l.isTls() && l.isLoopback()) {
                backendIndex_ = i;
                break;
            }
        }
    }

    void chooseAuth() {
        auth_ = conf_.authFor(served_.front());
        if (conf_.perListenerSettings) {
            for (size_t i : served_) {
                const auto& a = conf_.authFor(i);
                if (a.passwordFile != auth_.passwordFile || a.aclFile != auth_.aclFile ||
                    a.allowAnonymous != auth_.allowAnonymous) {
                    notes_.push_back(
                        "per_listener_settings: the listeners authenticate differently; Moat "
                        "has one auth section and one policy, taken from " +
                        conf_.listeners[served_.front()].where.str() + ". Review them.");
                    break;
                }
            }
        }
        for (size_t i : served_) {
            const auto& l = conf_.listeners[i];
            // With use_identity_as_username Mosquitto never checks that listener's password.
            if (l.requireCertificate && l.useIdentityAsUsername)
                certificateMethod_ = true;
            else if (auth_.passwordFile)
                passwordMethod_ = true;
        }
        if (isRelative(auth_.passwordFile) || isRelative(auth_.aclFile))
            notes_.push_back(
                "relative paths were relative to the broker's working directory; "
                "Moat resolves them against this file's folder. Make them "
                "absolute if they differ.");
        if (!certificateMethod_ && !passwordMethod_ && !auth_.allowAnonymous.value_or(false))
            throw ImportError(
                conf_.path +
                ": no authentication to carry over: no password_file, no "
                "use_identity_as_username and allow_anonymous false (Mosquitto then accepts "
                "any username unchecked; Moat needs a factor)");
    }

    std::string header() const {
        std::ostringstream h;
        h << "# Moat configuration imported from " << oneLine(conf_.path) << " by `moat import`.\n"
          << "# Review it, then: moat check -c moat.yaml && moat audit -c moat.yaml\n#\n"
          << "# On the broker: Moat now owns the device-facing ports below and forwards to the "
             "broker\n# in plaintext. ";
        if (backendIndex_) {
            h << "It dials the broker's existing loopback listener ("
              << conf_.listeners[*backendIndex_].where.str() << ").\n";
        } else {
            h << "Give the broker a listener only Moat can reach, e.g. in mosquitto.conf:\n"
              << "#     listener " << suggestedBackendPort() << " 127.0.0.1\n";
        }
        h << "# and move the broker's own TLS listeners off the ports Moat takes.\n";
        for (const auto& n : notes_) h << "#\n# NOTE: " << oneLine(n) << "\n";
        std::vector<Unmapped> all = conf_.unmapped;
        all.insert(all.end(), unmapped_.begin(), unmapped_.end());
        if (!all.empty()) {
            h << "#\n# Not carried over (no equivalent in Moat; they stay with the broker or "
                 "need a decision):\n";
            for (const auto& u : all)
                h << "#   " << oneLine(u.where.str()) << ": " << oneLine(u.key) << " "
                  << oneLine(u.value) << " -- " << u.why << "\n";
        }
        h << "\n";
        return h.str();
    }

    int suggestedBackendPort() const {
        std::set<int> used;
        for (const auto& l : conf_.listeners) used.insert(l.port);
        int port = 1884;
        while (used.count(port)) ++port;
        return port;
    }

    void listeners(std::ostream& o) {
        o << "listeners:\n";
        std::set<std::string> names;
        for (size_t i : served_) {
            const auto& l = conf_.listeners[i];
            std::string name = std::string(l.isTls() ? "mqtts-" : "mqtt-") + std::to_string(l.port);
            while (!names.insert(name).second) name += "-b";
            o << "  - name: " << q(name) << "     # " << oneLine(l.where.str()) << "\n";
            o << "    bind: " << q(bindOf(l)) << "\n";
            if (!l.isTls()) {
                o << "    # plaintext, as on the broker: `moat audit` flags it; move these "
                     "devices to TLS\n";
                continue;
            }
            o << "    tls:\n";
            o << "      cert: " << q(l.certfile) << "\n";
            o << "      key: " << q(l.keyfile) << "\n";
            std::string ca = l.cafile;
            if (ca.empty() && !l.capath.empty()) {
                ca = l.capath + "/moat-ca-bundle.pem";
                o << "      # capath: Moat takes one CA bundle; create it with\n"
                  << "      #   cat " << oneLine(l.capath) << "/*.pem > " << oneLine(ca) << "\n";
            }
            // Mosquitto only asks for a client certificate with require_certificate true.
            if (l.requireCertificate && !ca.empty()) {
                o << "      client_ca: " << q(ca) << "\n";
                o << "      require_client_cert: true\n";
                if (!l.crlfile.empty()) o << "      crl: " << q(l.crlfile) << "\n";
            } else {
                o << "      require_client_cert: false\n";
            }
            if (!l.tlsVersion.empty()) {
                std::string v = l.tlsVersion == "tlsv1.3" ? "1.3" : "1.2";
                if (l.tlsVersion != "tlsv1.3" && l.tlsVersion != "tlsv1.2")
                    o << "      # tls_version " << oneLine(l.tlsVersion)
                      << ": Moat never accepts below TLS 1.2\n";
                o << "      min_version: " << q(v) << "\n";
            }
            if (!l.ciphers.empty()) o << "      ciphers: " << q(l.ciphers) << "\n";
            if (!l.ciphersTls13.empty()) o << "      ciphersuites: " << q(l.ciphersTls13) << "\n";
        }
    }

    void backend(std::ostream& o) const {
        std::string address = backendIndex_ ? bindOf(conf_.listeners[*backendIndex_])
                                            : "127.0.0.1:" + std::to_string(suggestedBackendPort());
        o << "\nbackend:\n  address: " << q(address) << "\n";
        if (passwordMethod_ && !certificateMethod_) {
            o << "  # passthrough: the broker keeps checking its own password file, so it must "
                 "see the\n  # client's username and password. Switch to `identity` once "
                 "the broker's Moat-only\n  # listener no longer checks passwords.\n"
              << "  credentials: passthrough\n";
        } else {
            o << "  # identity: the broker sees the authenticated identity as the username "
                 "(as\n  # use_identity_as_username did), no password.";
            if (passwordMethod_)
                o << " Certificate identities have no\n  # password to pass through: the "
                     "broker's Moat-only listener must not check passwords\n  # "
                     "(per_listener_settings true, allow_anonymous true on that listener).";
            o << "\n  credentials: identity\n";
        }
    }

    void auth(std::ostream& o) const {
        std::vector<std::string> methods;
        if (certificateMethod_) methods.push_back("certificate");
        if (passwordMethod_) methods.push_back("password");
        o << "\nauth:\n  methods: [";
        for (size_t i = 0; i < methods.size(); ++i) o << (i ? ", " : "") << methods[i];
        o << "]\n  require: any\n";
        if (passwordMethod_) o << "  password_file: " << q(*auth_.passwordFile) << "\n";
        if (certificateMethod_) o << "  identity_from: cert_cn   # use_identity_as_username\n";
        o << "  anonymous: " << (auth_.allowAnonymous.value_or(false) ? "true" : "false") << "\n";
    }

    static void role(std::ostream& o, const std::string& name, const RoleRules& r,
                     const std::string& comment) {
        o << "    " << q(name) << ":" << (comment.empty() ? "" : "   # " + oneLine(comment))
          << "\n";
        o << "      publish: " << list(r.publish) << "\n";
        o << "      subscribe: " << list(r.subscribe) << "\n";
        if (!r.denyPublish.empty()) o << "      deny_publish: " << list(r.denyPublish) << "\n";
        if (!r.denySubscribe.empty())
            o << "      deny_subscribe: " << list(r.denySubscribe) << "\n";
    }

    void policy(std::ostream& o) const {
        o << "\npolicy:\n";
        if (!acl_) {
            o << "  # No acl_file: Mosquitto let every authenticated client use every topic.\n"
              << "  default_roles: [\"all\"]\n  roles:\n";
            role(o, "all", RoleRules{{"#"}, {"#", "$SYS/#"}, {}, {}}, "");
            o << "  check_deliveries: true\n  on_publish_denied: drop\n";
            return;
        }
        std::set<std::string> taken;
        const bool anonymous = auth_.allowAnonymous.value_or(false);
        std::string patterns;
        if (!acl_->patterns.empty()) patterns = roleNameFor("", "mosquitto-patterns", taken);
        std::vector<std::string> defaults;
        if (!patterns.empty()) defaults.push_back(patterns);
        o << "  # acl_file: `pattern` lines are the default role (every identity), each `user` "
             "block\n  # its own role. Mosquitto grants broad SUBSCRIBEs and filters per "
             "message: Moat checks\n  # subscriptions against the rules and every delivery "
             "too (check_deliveries).\n";
        o << "  default_roles: " << list(defaults) << "\n  roles:\n";
        if (!patterns.empty())
            role(o, patterns, rulesOf(acl_->patterns), "pattern lines (%u, %c substituted)");
        std::vector<std::pair<std::string, std::vector<std::string>>> users;
        if (anonymous && !acl_->anonymous.empty()) {
            std::string name = roleNameFor("", "anonymous-clients", taken);
            role(o, name, rulesOf(acl_->anonymous), "topic lines before the first user line");
            std::vector<std::string> roles{name};
            users.push_back({"anonymous", roles});
        }
        for (const auto& [user, rules] : acl_->users) {
            std::string name = roleNameFor("user-", user, taken);
            role(o, name, rulesOf(rules), "user " + user);
            std::vector<std::string> roles{name};
            if (!patterns.empty()) roles.push_back(patterns);
            users.push_back({user, roles});
        }
        if (!users.empty()) {
            o << "  users:\n";
            for (const auto& [user, roles] : users)
                o << "    " << q(user) << ": " << list(roles) << "\n";
        }
        o << "  check_deliveries: true\n  on_publish_denied: drop\n";
    }

    void limits(std::ostream& o) const {
        std::ostringstream l;
        if (conf_.maxKeepalive && *conf_.maxKeepalive > 0 && *conf_.maxKeepalive <= 65535) {
            l << "  max_keepalive: " << *conf_.maxKeepalive << "s\n";
            // Mosquitto refuses a v3 keepalive above its max_keepalive: keep that behaviour.
            // `accept` would serve such devices with TCP keepalive probes instead.
            l << "  v3_keepalive: refuse              # as Mosquitto's max_keepalive; accept "
                 "serves them (TCP probes)\n";
        }
        long total = 0;
        bool bounded = true;
        for (size_t i : served_) {
            const auto& mc = conf_.listeners[i].maxConnections;
            if (!mc || *mc < 0)
                bounded = false;
            else
                total += *mc;
        }
        if (bounded && total > 0)
            l << "  max_connections: " << total << "   # sum of the listeners' max_connections\n";
        else if (!served_.empty())
            l << "  max_connections: unlimited   # as on the broker\n";
        if (conf_.maxPacketSize && *conf_.maxPacketSize > 0) {
            l << "  max_packet_size: " << *conf_.maxPacketSize << "\n";
        } else if (conf_.messageSizeLimit && *conf_.messageSizeLimit > 0) {
            // Moat bounds whole packets: the payload limit plus room for a topic and
            // properties.
            l << "  max_packet_size: " << (*conf_.messageSizeLimit + 65536)
              << "   # message_size_limit + 64 KiB for topic and properties\n";
        }
        if (conf_.maxInflight)
            l << "  max_inflight: "
              << (*conf_.maxInflight <= 0 || *conf_.maxInflight > 65535 ? 65535
                                                                        : *conf_.maxInflight)
              << "\n";
        o << "\nlimits:\n" << l.str();
        o << "  # Moat adds protections Mosquitto did not have; their defaults apply (see the "
             "README):\n  # publish_rate 100/s, publish_bytes_rate 1MiB/s, max_packet_size "
             "256KiB, max_subscriptions 100,\n  # max_connections_per_ip 100, "
             "connection_rate_per_ip 20/s, handshake_timeout 10s. Raise them\n  # here for "
             "bridges, dashboards or large payloads.\n";
    }
};

}  // namespace

std::vector<size_t> servedListeners(const MosquittoConfig& conf, std::vector<Unmapped>* skipped) {
    std::vector<size_t> served;
    for (size_t i = 0; i < conf.listeners.size(); ++i) {
        const auto& l = conf.listeners[i];
        if (l.port == 0) continue;  // unix socket, listed as unmapped by the parser
        if (l.protocol != "mqtt") {
            if (skipped)
                skipped->push_back(
                    {l.where, "protocol", l.protocol, "WebSocket listeners are not imported yet"});
            continue;
        }
        if (!l.isTls() && l.isLoopback()) continue;  // the broker's side, not the devices'
        served.push_back(i);
    }
    if (served.empty())
        throw ImportError(conf.path +
                          ": no listener to put Moat in front of (only loopback "
                          "plaintext or WebSocket listeners)");
    return served;
}

std::string renderMoatConfig(const MosquittoConfig& conf, const std::optional<AclFile>& acl) {
    return Renderer(conf, acl).render();
}

std::string importMosquitto(const std::string& confPath) {
    MosquittoConfig conf = parseMosquittoConf(confPath);
    std::optional<AclFile> acl;
    // The ACL in force for the first listener Moat serves, as render() chooses its auth.
    const auto& aclPath = conf.authFor(servedListeners(conf, nullptr).front()).aclFile;
    if (aclPath) acl = parseAclFile(*aclPath);
    return renderMoatConfig(conf, acl);
}

}  // namespace moat::migrate
