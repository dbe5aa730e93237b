#pragma once
// Section parsers of the loader (internal). Each reads one section of CONTRACT.md §2 from an
// opened mapping into the Config, reports every problem it finds, and checks the rules that
// only involve its own section; Validate.cpp holds the checks that span sections.

#include <string>

#include "gateway/config/Config.h"
#include "gateway/config/YamlReader.h"

namespace moat::config::detail {

struct LoadContext {
    Diagnostics& diag;
    std::string baseDir;         // folder of the config file: relative paths start here
    int metricsBindLine = 0;     // for the listener/metrics port clash check
    int backendAddressLine = 0;  // for the backend-is-a-listener check
};

void parseListeners(LoadContext& ctx, const Field& f, std::vector<ListenerConfig>& out);
void parseBackend(LoadContext& ctx, MapReader& m, BackendConfig& out);
void parseAuth(LoadContext& ctx, MapReader& m, AuthConfig& out);
bool parseTokenAuth(LoadContext& ctx, MapReader& m, TokenAuthConfig& out);
void parsePolicy(LoadContext& ctx, MapReader& m, policy::PolicySpec& out);
void parseLimits(LoadContext& ctx, MapReader& m, LimitsConfig& out);
void parseBans(LoadContext& ctx, MapReader& m, BansConfig& out);
void parseIntegrity(LoadContext& ctx, MapReader& m, IntegrityConfig& out);
void parseCluster(LoadContext& ctx, MapReader& m, ClusterConfig& out);
void parseMetrics(LoadContext& ctx, MapReader& m, MetricsConfig& out);
void parseAudit(LoadContext& ctx, MapReader& m, AuditConfig& out);
void parseTuning(LoadContext& ctx, MapReader& m, TuningConfig& out);
void parseAnomaly(LoadContext& ctx, MapReader& m, AnomalyConfig& out);

// Checks spanning sections, run once everything is parsed.
void validateCrossSection(LoadContext& ctx, const Config& cfg);

// A path-valued field: resolved against the config folder and checked to be readable.
bool readFilePath(LoadContext& ctx, const Field& f, std::string& out);

// proxy_protocol values; YAML 1.1 readers turn a bare `off` into false, so "false" is "off".
bool readProxyProtocol(Diagnostics& d, const Field& f, ProxyProtocol& out, bool backend);

// Two binds that cannot both be listened on (same port, same or wildcard-covered address).
bool bindsConflict(const HostPort& a, const HostPort& b);

}  // namespace moat::config::detail
