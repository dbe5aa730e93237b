#pragma once
// What `moat import` reads: a Mosquitto 2.x configuration (mosquitto.conf, its include_dir
// files) and its ACL file, as plain data. Pure: files in, model out, no Moat types.
//
// Only what Moat can carry over is modelled field by field; every other option is kept as
// an Unmapped entry (file, line, key, value) so the import can list it instead of dropping
// it silently. Unreadable files and malformed lines throw ImportError("FILE:LINE: ...").

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moat::migrate {

struct SourceLine {
    std::string file;
    int line = 0;
    std::string str() const { return file + ":" + std::to_string(line); }
};

class ImportError : public std::runtime_error {
  public:
    ImportError(const SourceLine& where, const std::string& message)
        : std::runtime_error(where.str() + ": " + message) {}
    explicit ImportError(const std::string& message) : std::runtime_error(message) {}
};

// Options Mosquitto knows but Moat has no equivalent for (or that belong to the broker).
struct Unmapped {
    SourceLine where;
    std::string key;
    std::string value;
    std::string why;  // short reason, shown in the import's header comment
};

// The options `per_listener_settings true` makes per listener (else they are global).
struct AuthSettings {
    std::optional<std::string> passwordFile;
    std::optional<std::string> aclFile;
    std::optional<bool> allowAnonymous;
};

struct MosquittoListener {
    SourceLine where;
    int port = 1883;
    std::string address;  // empty = every address
    std::string protocol = "mqtt";
    std::string cafile, capath, certfile, keyfile, crlfile, tlsVersion, ciphers, ciphersTls13;
    bool requireCertificate = false;
    bool useIdentityAsUsername = false;
    bool useSubjectAsUsername = false;
    std::optional<long> maxConnections;  // -1 = unlimited
    AuthSettings auth;                   // used with per_listener_settings true

    bool isTls() const { return !certfile.empty() || !keyfile.empty(); }
    bool isLoopback() const;
};

struct MosquittoConfig {
    std::string path;  // the main file, as given
    bool perListenerSettings = false;
    std::vector<MosquittoListener> listeners;
    AuthSettings auth;  // global (per_listener_settings false)
    std::optional<long> maxKeepalive, maxPacketSize, messageSizeLimit, maxInflight;
    std::vector<Unmapped> unmapped;

    // The auth settings in force for listener i (global or its own).
    const AuthSettings& authFor(size_t i) const {
        return perListenerSettings ? listeners[i].auth : auth;
    }
};

MosquittoConfig parseMosquittoConf(const std::string& path);

// ---- ACL file (acl_file) -----------------------------------------------------------------

enum class AclAccess { Read, Write, ReadWrite, Deny };

struct AclRule {
    SourceLine where;
    AclAccess access = AclAccess::ReadWrite;
    std::string topic;
};

struct AclFile {
    std::vector<AclRule> anonymous;  // `topic` lines before the first `user` line
    std::vector<AclRule> patterns;   // `pattern` lines: every client, %u / %c substituted
    std::vector<std::pair<std::string, std::vector<AclRule>>> users;  // in file order
};

AclFile parseAclFile(const std::string& path);

}  // namespace moat::migrate
