#include "gateway/cli/Commands.h"

#include <openssl/crypto.h>
#include <uv.h>

#include <cstdio>
#include <iostream>

#include "gateway/audit/ConfigAudit.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/Snapshot.h"
#include "policy/PasswordFile.h"
#include "policy/RuleFilter.h"
#include "policy/TopicMatch.h"

#ifndef MOAT_VERSION
#define MOAT_VERSION "0.0.0"
#endif

namespace moat::cli {

std::string flagValue(const Args& args, const std::string& flag, const std::string& fallback) {
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
        if (args[i].rfind(flag + "=", 0) == 0) return args[i].substr(flag.size() + 1);
    }
    return fallback;
}

std::string configPathArg(const Args& args) {
    std::string p = flagValue(args, "-c");
    return p.empty() ? flagValue(args, "--config") : p;
}

namespace {

std::shared_ptr<const net::Snapshot> loadOrReport(const std::string& path) {
    std::vector<std::string> errors;
    auto snap = net::loadSnapshot(path, errors);
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    return snap;
}

// For a subscription granted over denied branches: one line per deny_subscribe rule of the
// identity's roles whose branch the filter overlaps, i.e. the deliveries Moat will withhold.
std::vector<std::string> withheldBranches(const policy::Policy& policy,
                                          const policy::ClientRights& rights,
                                          const std::string& identity, const std::string& clientId,
                                          std::string_view filter) {
    std::vector<std::string> out;
    const std::string_view inner = policy::shareInnerFilter(filter);
    std::string expanded;
    for (const std::string& roleName : rights.roles()) {
        for (const policy::RoleSpec& role : policy.spec().roles) {
            if (role.name != roleName) continue;
            for (size_t i = 0; i < role.denySubscribe.size(); ++i) {
                if (!policy::expandRuleFilter(role.denySubscribe[i], identity, clientId, true,
                                              expanded) ||
                    !policy::filtersOverlap(inner, expanded))
                    continue;
                out.push_back("withheld at delivery: " + expanded + " (role " + role.name +
                              " deny_subscribe[" + std::to_string(i) + "])");
            }
        }
    }
    return out;
}

}  // namespace

int runCommand(const Args& args) {
    std::string path = configPathArg(args);
    if (path.empty()) {
        std::fprintf(stderr, "moat run: -c FILE is required\n");
        return 1;
    }
    auto snap = loadOrReport(path);
    if (!snap) return 1;
    net::Gateway gateway(path, snap);
    return gateway.run();
}

int checkCommand(const Args& args) {
    std::string path = configPathArg(args);
    if (path.empty()) {
        std::fprintf(stderr, "moat check: -c FILE is required\n");
        return 1;
    }
    auto snap = loadOrReport(path);
    if (!snap) return 1;
    std::printf("%s: ok (%zu listeners, %zu roles)\n", path.c_str(), snap->config->listeners.size(),
                snap->config->policy.roles.size());
    return 0;
}

int explainCommand(const Args& args) {
    std::string path = configPathArg(args);
    std::string identity = flagValue(args, "--identity");
    std::string clientId = flagValue(args, "--client-id");
    // The positional words are what is left after the flags and their values.
    std::vector<std::string> positional;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-c" || a == "--config" || a == "--identity" || a == "--client-id") {
            ++i;
            continue;
        }
        if (a.rfind("--", 0) == 0) continue;
        positional.push_back(a);
    }
    if (path.empty() || identity.empty() || positional.size() != 2 ||
        (positional[0] != "publish" && positional[0] != "subscribe")) {
        std::fprintf(stderr,
                     "usage: moat explain -c FILE --identity ID [--client-id CID] "
                     "(publish|subscribe) TOPIC\n");
        return 1;
    }
    config::LoadResult r = config::loadConfigFile(path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.toString().c_str());
    if (!r.config) return 1;
    std::vector<std::string> errors;
    auto policy = policy::Policy::compile(r.config->policy, errors);
    for (const auto& e : errors) std::fprintf(stderr, "%s: policy: %s\n", path.c_str(), e.c_str());
    if (!policy) return 1;
    const std::string cid = clientId.empty() ? identity : clientId;
    auto rights = policy->rightsFor(identity, cid);
    if (positional[0] == "publish") {
        policy::Decision d = rights->checkPublish(positional[1]);
        std::printf("%s (%s)\n", d.allowed ? "allow" : "deny", d.describe().c_str());
        if (d.allowed) {
            // The retain / QoS rights of that publish (the exit status is the publish's).
            policy::Decision retain = rights->checkRetain(positional[1]);
            std::printf("retain: %s (%s)\n", retain.allowed ? "allow" : "deny",
                        retain.allowed ? retain.describe().c_str()
                                       : "no role grants both the publish and retain");
            std::printf("max_qos: %u\n", static_cast<unsigned>(rights->maxQos()));
        }
        return d.allowed ? 0 : 3;
    }
    policy::SubscribeDecision d =
        rights->checkSubscription(positional[1], r.config->policy.checkDeliveries);
    std::printf("%s (%s)\n", d.allowed() ? "allow" : "deny", d.decision.describe().c_str());
    if (d.allowed() && rights->maxQos() < 2)
        std::printf("max_qos: %u (a higher requested QoS is granted at this)\n",
                    static_cast<unsigned>(rights->maxQos()));
    if (d.outcome == policy::SubscribeOutcome::GrantFiltered) {
        for (const auto& line : withheldBranches(*policy, *rights, identity, cid, positional[1]))
            std::printf("%s\n", line.c_str());
    }
    return d.allowed() ? 0 : 3;
}

int auditCommand(const Args& args) {
    std::string path = configPathArg(args);
    std::string format = flagValue(args, "--format", "text");
    if (path.empty() || (format != "text" && format != "json")) {
        std::fprintf(stderr, "usage: moat audit -c FILE [--format text|json]\n");
        return 1;
    }
    config::LoadResult r = config::loadConfigFile(path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.toString().c_str());
    if (!r.config) return 1;
    auto findings = audit::auditConfig(*r.config, std::chrono::system_clock::now());
    std::string out = format == "json" ? audit::formatJson(findings) : audit::formatText(findings);
    std::fwrite(out.data(), 1, out.size(), stdout);
    for (const auto& f : findings)
        if (f.severity == audit::Finding::Severity::High) return 4;
    return 0;
}

int passwdCommand(const Args& args) {
    if (args.size() != 2) {
        std::fprintf(stderr, "usage: moat passwd FILE USER   (password on stdin)\n");
        return 1;
    }
    std::string password;
    if (!std::getline(std::cin, password) || password.empty()) {
        std::fprintf(stderr, "moat passwd: no password on stdin\n");
        return 1;
    }
    if (!password.empty() && password.back() == '\r') password.pop_back();
    std::string error;
    bool ok = policy::setPasswordInFile(args[0], args[1], password, error);
    OPENSSL_cleanse(password.data(), password.size());
    if (!ok) {
        std::fprintf(stderr, "moat passwd: %s\n", error.c_str());
        return 1;
    }
    return 0;
}

int versionCommand(const Args&) {
    std::printf("moat %s\nOpenSSL %s\nlibuv %s\n", MOAT_VERSION,
                OpenSSL_version(OPENSSL_VERSION_STRING), uv_version_string());
    return 0;
}

}  // namespace moat::cli
