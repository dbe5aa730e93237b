#pragma once
// Everything a worker needs to serve, built from one config file and validated as a whole:
// config, compiled policy, password file, TLS contexts. Immutable; a reload builds a new one
// off the event loops and swaps the pointer on every worker (connections keep the one they
// started with for TLS, and move to the new one for policy).

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/inspect/PipelineOptions.h"
#include "gateway/integrity/KeyStore.h"
#include "gateway/proxy/CidrSet.h"
#include "gateway/tls/TlsContext.h"
#include "gateway/token/KeySet.h"
#include "gateway/token/TokenVerifier.h"
#include "gateway/websocket/Upgrade.h"
#include "policy/PasswordFile.h"
#include "policy/Policy.h"

namespace moat::net {

struct Snapshot {
    std::shared_ptr<const config::Config> config;
    std::shared_ptr<const policy::Policy> policy;
    std::shared_ptr<const policy::PasswordFile> passwords;        // null: no password factor
    std::map<std::string, std::shared_ptr<tls::TlsContext>> tls;  // by listener name
    // integrity.rules and their keys (fixed keys loaded; %u keys cached per identity as
    // clients connect, dropped with the snapshot on reload). Null without rules.
    std::shared_ptr<const integrity::KeyStore> integrity;
    // Listeners with proxy_protocol on: the versions accepted and from which sources.
    struct ListenerProxy {
        proxy::Versions versions;
        proxy::CidrSet trusted;
    };
    std::map<std::string, ListenerProxy> proxy;  // by listener name; absent = off
    // What each connection's inspect::ConnectionPipeline takes from this snapshot.
    std::shared_ptr<const inspect::PipelineOptions> pipeline;
    // auth.token: the claim rules, the keys from files (keys, hmac_secrets, jwks_file; the
    // jwks_url keys live in the Gateway's JwksFetcher) and the role names roles_claim may
    // name. Null without auth.token.
    struct Token {
        token::ClaimRules rules;
        token::KeySet fileKeys;
        std::set<std::string> roleNames;
    };
    std::shared_ptr<const Token> token;
    // WebSocket listeners: the upgrade rules (options.trusted points into the same object,
    // which connections keep while they upgrade, across reloads).
    struct ListenerWebSocket {
        proxy::CidrSet trusted;
        websocket::UpgradeOptions options;
    };
    std::map<std::string, std::shared_ptr<const ListenerWebSocket>> websocket;  // absent = raw
    uint64_t generation = 0;
};

std::shared_ptr<const inspect::PipelineOptions> pipelineOptions(const Snapshot& snapshot);

// Loads `path` and builds a complete snapshot; on failure returns null and fills `errors`
// with "file:line: message" lines.
std::shared_ptr<const Snapshot> loadSnapshot(const std::string& path,
                                             std::vector<std::string>& errors);
// Builds from an already loaded config.
// auth.token's keys and rules (errors: "auth.token.keys: FILE: why").
std::shared_ptr<const Snapshot::Token> buildTokenSettings(const config::Config& config,
                                                          std::vector<std::string>& errors);
std::shared_ptr<const Snapshot> buildSnapshot(std::shared_ptr<const config::Config> config,
                                              std::vector<std::string>& errors);

}  // namespace moat::net
