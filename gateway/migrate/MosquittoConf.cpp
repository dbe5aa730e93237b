#include "gateway/migrate/MosquittoConf.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace moat::migrate {

namespace {

std::string trim(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

// "key rest of line" → {key, rest}; Mosquitto values may contain spaces (paths, topics).
std::pair<std::string, std::string> splitKey(const std::string& line) {
    size_t sp = line.find_first_of(" \t");
    if (sp == std::string::npos) return {line, ""};
    return {line.substr(0, sp), trim(line.substr(sp))};
}

std::vector<std::string> readLines(const std::string& path, const SourceLine& from) {
    std::ifstream in(path);
    if (!in) {
        std::string why = std::string("cannot read ") + path + ": " + std::strerror(errno);
        if (from.line > 0) throw ImportError(from, why);
        throw ImportError(why);
    }
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
    }
    return lines;
}

bool parseBool(const SourceLine& at, const std::string& key, const std::string& v) {
    if (v == "true") return true;
    if (v == "false") return false;
    throw ImportError(at, key + ": expected true or false, got '" + v + "'");
}

long parseLong(const SourceLine& at, const std::string& key, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
        throw ImportError(at, key + ": expected a whole number, got '" + v + "'");
    return n;
}

// Why Moat does not carry an option over, for the options an operator will recognise.
// Anything not listed gets the generic reason.
std::string unmappedReason(const std::string& key) {
    static const std::map<std::string, std::string> exact = {
        {"plugin", "plugins run in the broker, behind Moat (keep them there)"},
        {"auth_plugin", "plugins run in the broker, behind Moat (keep them there)"},
        {"psk_hint", "TLS-PSK is not supported by Moat (certificates or passwords)"},
        {"psk_file", "TLS-PSK is not supported by Moat (certificates or passwords)"},
        {"connection", "bridges stay on the broker"},
        {"address", "bridges stay on the broker"},
        {"addresses", "bridges stay on the broker"},
        {"topic", "bridges stay on the broker"},
        {"http_dir", "WebSocket listeners are not imported yet"},
        {"allow_zero_length_clientid", "client ids: see auth.client_id"},
        {"auto_id_prefix", "client ids: see auth.client_id"},
        {"clientid_prefixes", "client ids: see auth.client_id"},
        {"dhparamfile", "FFDHE is off in Moat (tls.groups)"},
        {"use_subject_as_username",
         "no equivalent: Moat takes the identity from the CN or a SAN (auth.identity_from)"},
        {"bind_interface", "Moat binds addresses, not interfaces"},
        {"socket_domain", "use an IPv4 or IPv6 bind address"},
        {"mount_point", "no equivalent: mount points stay on the broker"},
        {"password_file", "per_listener_settings: Moat has one auth section"},
        {"acl_file", "per_listener_settings: Moat has one policy"},
        {"allow_anonymous", "per_listener_settings: Moat has one auth section"},
    };
    if (auto it = exact.find(key); it != exact.end()) return it->second;
    static const std::vector<std::pair<std::string, std::string>> prefixes = {
        {"persist", "broker setting (stays in mosquitto.conf)"},
        {"autosave", "broker setting (stays in mosquitto.conf)"},
        {"log_", "broker logging (Moat logs to its audit log)"},
        {"bridge_", "bridges stay on the broker"},
        {"remote_", "bridges stay on the broker"},
        {"plugin_opt_", "plugins run in the broker, behind Moat"},
        {"auth_opt_", "plugins run in the broker, behind Moat"},
        {"websockets_", "WebSocket listeners are not imported yet"},
        {"max_queued_", "broker queueing (stays in mosquitto.conf)"},
        {"sys_", "broker setting (stays in mosquitto.conf)"},
    };
    for (const auto& [prefix, why] : prefixes)
        if (key.rfind(prefix, 0) == 0) return why;
    return "no equivalent in Moat (a broker setting: keep it in mosquitto.conf)";
}

class ConfParser {
  public:
    MosquittoConfig conf;

    void parseFile(const std::string& path, const SourceLine& from, int depth) {
        if (depth > 8) throw ImportError(from, "include_dir nested too deeply");
        auto lines = readLines(path, from);
        for (size_t i = 0; i < lines.size(); ++i) {
            SourceLine at{path, static_cast<int>(i + 1)};
            std::string line = trim(lines[i]);
            if (line.empty() || line[0] == '#') continue;
            auto [key, value] = splitKey(line);
            option(at, key, value, depth);
        }
    }

  private:
    // Index of the listener that listener-scoped options before any `listener` line go to
    // (Mosquitto's default listener: `port`, `bind_address`).
    std::optional<size_t> defaultListener_;
    std::optional<size_t> current_;

    MosquittoListener& currentListener(const SourceLine& at) {
        if (current_) return conf.listeners[*current_];
        if (!defaultListener_) {
            MosquittoListener l;
            l.where = at;
            conf.listeners.push_back(l);
            defaultListener_ = conf.listeners.size() - 1;
        }
        return conf.listeners[*defaultListener_];
    }

    static void needValue(const SourceLine& at, const std::string& key, const std::string& v) {
        if (v.empty()) throw ImportError(at, key + ": missing value");
    }

    void option(const SourceLine& at, const std::string& key, const std::string& value, int depth) {
        if (key == "include_dir") {
            needValue(at, key, value);
            includeDir(at, value, depth);
            return;
        }
        if (key == "listener") {
            needValue(at, key, value);
            auto [portText, address] = splitKey(value);
            MosquittoListener l;
            l.where = at;
            l.port = static_cast<int>(parseLong(at, key, portText));
            if (l.port < 0 || l.port > 65535) throw ImportError(at, "listener: bad port");
            l.address = address;
            conf.listeners.push_back(l);
            current_ = conf.listeners.size() - 1;
            if (l.port == 0)
                conf.unmapped.push_back({at, key, value, "unix-socket listeners are not imported"});
            return;
        }
        if (key == "port") {
            needValue(at, key, value);
            // `port` always names the default listener, wherever it appears.
            auto saved = current_;
            current_.reset();
            currentListener(at).port = static_cast<int>(parseLong(at, key, value));
            current_ = saved;
            return;
        }
        if (key == "bind_address") {
            auto saved = current_;
            current_.reset();
            currentListener(at).address = value;
            current_ = saved;
            return;
        }
        if (key == "per_listener_settings") {
            conf.perListenerSettings = parseBool(at, key, value);
            return;
        }
        if (key == "password_file" || key == "acl_file" || key == "allow_anonymous") {
            authOption(at, key, value);
            return;
        }
        if (key == "max_keepalive") return setLong(at, key, value, conf.maxKeepalive);
        if (key == "max_packet_size") return setLong(at, key, value, conf.maxPacketSize);
        if (key == "message_size_limit") return setLong(at, key, value, conf.messageSizeLimit);
        if (key == "max_inflight_messages") return setLong(at, key, value, conf.maxInflight);
        if (listenerOption(at, key, value)) return;
        conf.unmapped.push_back({at, key, value, unmappedReason(key)});
    }

    void setLong(const SourceLine& at, const std::string& key, const std::string& value,
                 std::optional<long>& out) {
        needValue(at, key, value);
        out = parseLong(at, key, value);
    }

    void authOption(const SourceLine& at, const std::string& key, const std::string& value) {
        needValue(at, key, value);
        // Both are kept: which one is in force depends on per_listener_settings, which may
        // appear anywhere in the file.
        // Before any listener line they belong to the default listener, if there is one.
        std::optional<size_t> listener = current_ ? current_ : defaultListener_;
        std::vector<AuthSettings*> targets{&conf.auth};
        if (listener) targets.push_back(&conf.listeners[*listener].auth);
        for (AuthSettings* a : targets) {
            if (key == "password_file") a->passwordFile = value;
            if (key == "acl_file") a->aclFile = value;
            if (key == "allow_anonymous") a->allowAnonymous = parseBool(at, key, value);
        }
    }

    bool listenerOption(const SourceLine& at, const std::string& key, const std::string& v) {
        static const std::map<std::string, std::string MosquittoListener::*> strings = {
            {"cafile", &MosquittoListener::cafile},
            {"capath", &MosquittoListener::capath},
            {"certfile", &MosquittoListener::certfile},
            {"keyfile", &MosquittoListener::keyfile},
            {"crlfile", &MosquittoListener::crlfile},
            {"tls_version", &MosquittoListener::tlsVersion},
            {"ciphers", &MosquittoListener::ciphers},
            {"ciphers_tls1.3", &MosquittoListener::ciphersTls13},
            {"protocol", &MosquittoListener::protocol},
        };
        static const std::map<std::string, bool MosquittoListener::*> bools = {
            {"require_certificate", &MosquittoListener::requireCertificate},
            {"use_identity_as_username", &MosquittoListener::useIdentityAsUsername},
            {"use_subject_as_username", &MosquittoListener::useSubjectAsUsername},
        };
        if (auto it = strings.find(key); it != strings.end()) {
            needValue(at, key, v);
            currentListener(at).*(it->second) = v;
            return true;
        }
        if (auto it = bools.find(key); it != bools.end()) {
            bool b = parseBool(at, key, v);
            currentListener(at).*(it->second) = b;
            if (b && key == "use_subject_as_username")
                conf.unmapped.push_back({at, key, v, unmappedReason(key)});
            return true;
        }
        if (key == "max_connections") {
            needValue(at, key, v);
            currentListener(at).maxConnections = parseLong(at, key, v);
            return true;
        }
        return false;
    }

    void includeDir(const SourceLine& at, const std::string& dir, int depth) {
        DIR* d = opendir(dir.c_str());
        if (!d) throw ImportError(at, "include_dir " + dir + ": " + std::strerror(errno));
        std::vector<std::string> files;
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            if (name.size() > 5 && name.compare(name.size() - 5, 5, ".conf") == 0)
                files.push_back(dir + "/" + name);
        }
        closedir(d);
        std::sort(files.begin(), files.end());  // Mosquitto reads them in sorted order
        for (const auto& f : files) parseFile(f, at, depth + 1);
    }
};

AclAccess parseAccess(const std::string& word, bool* ok) {
    *ok = true;
    if (word == "read") return AclAccess::Read;
    if (word == "write") return AclAccess::Write;
    if (word == "readwrite") return AclAccess::ReadWrite;
    if (word == "deny") return AclAccess::Deny;
    *ok = false;
    return AclAccess::ReadWrite;
}

}  // namespace

bool MosquittoListener::isLoopback() const {
    return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

MosquittoConfig parseMosquittoConf(const std::string& path) {
    ConfParser p;
    p.conf.path = path;
    p.parseFile(path, SourceLine{}, 0);
    return std::move(p.conf);
}

AclFile parseAclFile(const std::string& path) {
    AclFile acl;
    auto lines = readLines(path, SourceLine{});
    std::vector<AclRule>* target = &acl.anonymous;
    for (size_t i = 0; i < lines.size(); ++i) {
        SourceLine at{path, static_cast<int>(i + 1)};
        std::string line = trim(lines[i]);
        if (line.empty() || line[0] == '#') continue;
        auto [key, rest] = splitKey(line);
        if (key == "user") {
            if (rest.empty()) throw ImportError(at, "user: missing user name");
            acl.users.push_back({rest, {}});
            target = &acl.users.back().second;
            continue;
        }
        if (key != "topic" && key != "pattern")
            throw ImportError(at, "expected 'user', 'topic' or 'pattern', got '" + key + "'");
        AclRule rule;
        rule.where = at;
        auto [first, after] = splitKey(rest);
        bool isAccess = false;
        AclAccess access = parseAccess(first, &isAccess);
        if (isAccess && !after.empty()) {
            rule.access = access;
            rule.topic = after;
        } else {
            rule.topic = rest;  // access omitted: readwrite
        }
        if (rule.topic.empty()) throw ImportError(at, key + ": missing topic");
        (key == "pattern" ? acl.patterns : *target).push_back(std::move(rule));
    }
    return acl;
}

}  // namespace moat::migrate
