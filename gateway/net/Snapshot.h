#pragma once
// Everything a worker needs to serve, built from one config file and validated as a whole:
// config, compiled policy, password file, TLS contexts. Immutable; a reload builds a new one
// off the event loops and swaps the pointer on every worker (connections keep the one they
// started with for TLS, and move to the new one for policy).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/inspect/PipelineOptions.h"
#include "gateway/integrity/KeyStore.h"
#include "gateway/proxy/CidrSet.h"
#include "gateway/tls/TlsContext.h"
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
    uint64_t generation = 0;
};

std::shared_ptr<const inspect::PipelineOptions> pipelineOptions(const Snapshot& snapshot);

// Loads `path` and builds a complete snapshot; on failure returns null and fills `errors`
// with "file:line: message" lines.
std::shared_ptr<const Snapshot> loadSnapshot(const std::string& path,
                                             std::vector<std::string>& errors);
// Builds from an already loaded config.
std::shared_ptr<const Snapshot> buildSnapshot(std::shared_ptr<const config::Config> config,
                                              std::vector<std::string>& errors);

}  // namespace moat::net
