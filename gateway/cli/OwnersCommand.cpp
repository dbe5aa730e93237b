// `moat owners -c FILE [--release CLIENT_ID]`: lists the client-id owners of the running
// gateway (auth.protect_client_ids), or releases one, through its metrics port (GET /owners,
// POST /owners/release), which answers these on loopback only. Exit 0 / 1.

#include <cstdio>
#include <string>

#include "gateway/cli/Commands.h"
#include "gateway/config/Config.h"

namespace moat::cli {

namespace {

std::string urlEncode(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

bool hasFlag(const Args& args, const std::string& flag) {
    for (const auto& a : args)
        if (a == flag) return true;
    return false;
}

}  // namespace

int ownersCommand(const Args& args) {
    std::string path = configPathArg(args);
    const std::string release = flagValue(args, "--release");
    if (path.empty() || (hasFlag(args, "--release") && release.empty())) {
        std::fprintf(stderr, "usage: moat owners -c FILE [--release CLIENT_ID]\n");
        return 1;
    }
    config::LoadResult r = config::loadConfigFile(path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.toString().c_str());
    if (!r.config) return 1;
    if (!r.config->metrics.enabled) {
        std::fprintf(stderr, "moat owners: metrics.enabled is false (no admin endpoint)\n");
        return 1;
    }
    const auto& bind = r.config->metrics.bind;
    std::string body;
    const int status =
        release.empty()
            ? localHttpRequest(probeHost(bind.host), bind.port, "GET", "/owners", &body)
            : localHttpRequest(probeHost(bind.host), bind.port, "POST",
                               "/owners/release?client_id=" + urlEncode(release), &body);
    if (status != 200) {
        std::fprintf(stderr, "moat owners: %s (HTTP %d) %s\n",
                     status < 0 ? "gateway unreachable" : "refused", status, body.c_str());
        return 1;
    }
    std::fputs(body.c_str(), stdout);
    return 0;
}

}  // namespace moat::cli
