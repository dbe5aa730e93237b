// Checks that span sections, and the file-path reader every section shares.

#include "gateway/config/FileCheck.h"
#include "gateway/config/Parse.h"

namespace moat::config::detail {
namespace {

// True when, whatever the client presents, a listener without a client CA can authenticate
// nobody: every accepted way in needs a verified certificate.
bool certificateAlwaysNeeded(const AuthConfig& auth) {
    if (auth.anonymous || !auth.hasMethod(AuthMethod::Certificate)) return false;
    if (auth.require == AuthRequire::All) return true;
    return auth.methods.size() == 1;
}

}  // namespace

bool readFilePath(LoadContext& ctx, const Field& f, std::string& out) {
    std::string raw;
    if (!readString(ctx.diag, f, raw)) return false;
    std::string path = resolvePath(ctx.baseDir, raw);
    std::string reason = unreadableReason(path);
    if (!reason.empty()) {
        ctx.diag.error(f.line, f.path + ": cannot read " + quoteValue(path) + ": " + reason);
        return false;
    }
    out = std::move(path);
    return true;
}

void validateCrossSection(LoadContext& ctx, const Config& cfg) {
    Diagnostics& d = ctx.diag;

    if (certificateAlwaysNeeded(cfg.auth)) {
        for (size_t i = 0; i < cfg.listeners.size(); ++i) {
            const ListenerConfig& l = cfg.listeners[i];
            if (l.tls && !l.tls->clientCa.empty()) continue;
            d.error(l.line, "listeners[" + std::to_string(i) + "] '" + l.name +
                                "': auth needs a client certificate but this listener " +
                                (l.tls ? "has no tls.client_ca" : "is plaintext") +
                                ", so no client could ever connect");
        }
    }

    // The gateway would otherwise fail at start-up with EADDRINUSE, far from the cause.
    if (cfg.metrics.enabled) {
        for (size_t i = 0; i < cfg.listeners.size(); ++i) {
            const ListenerConfig& l = cfg.listeners[i];
            if (!bindsConflict(cfg.metrics.bind, l.bind)) continue;
            // With the default metrics bind, the listener is the line to point at.
            int line = ctx.metricsBindLine > 0 ? ctx.metricsBindLine : l.line;
            d.error(line, "metrics.bind: " + cfg.metrics.bind.toString() +
                              " clashes with listeners[" + std::to_string(i) + "] '" + l.name +
                              "' on " + l.bind.toString() + " (line " + std::to_string(l.line) +
                              ")");
        }
    }

    // A backend that is one of our own listeners makes every connection loop through Moat.
    if (ctx.backendAddressLine > 0) {
        for (size_t i = 0; i < cfg.listeners.size(); ++i) {
            const ListenerConfig& l = cfg.listeners[i];
            if (!bindsConflict(l.bind, cfg.backend.address)) continue;
            d.error(ctx.backendAddressLine, "backend.address: " + cfg.backend.address.toString() +
                                                " is Moat's own listeners[" + std::to_string(i) +
                                                "] '" + l.name + "'; it must name the broker");
        }
    }
}

}  // namespace moat::config::detail
