// Listener checks: plaintext, TLS version, weak ciphers, client authentication, CRL presence.

#include <algorithm>
#include <cctype>
#include <utility>

#include "gateway/audit/Checks.h"

namespace moat::audit::detail {

using Severity = Finding::Severity;

namespace {

// "anonymous key exchange: ADH-AES256-SHA and 11 more; RC4: RC4". Grouped by reason so a
// keyword such as ALL (dozens of suites) still gives a one-line, readable message.
std::string describeWeaknesses(const std::vector<CipherWeakness>& weak) {
    std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // first-seen order
    for (const auto& w : weak) {
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const auto& g) { return g.first == w.reason; });
        if (it == groups.end()) it = groups.insert(groups.end(), {w.reason, {}});
        it->second.push_back(w.suite);
    }
    std::string s;
    for (const auto& [reason, suites] : groups) {
        if (!s.empty()) s += "; ";
        s += reason + ": " + suites.front();
        if (suites.size() > 1) s += " and " + std::to_string(suites.size() - 1) + " more";
    }
    return s;
}

bool passwordFactorConfigured(const config::AuthConfig& auth) {
    return auth.hasMethod(config::AuthMethod::Password) && !auth.passwordFile.empty();
}

void auditPlaintext(const config::ListenerConfig& l, const std::string& subject, Findings& out) {
    const std::string where = (l.websocket ? "WebSocket (ws://) " : "") + describeHostPort(l.bind);
    if (isLoopbackHost(l.bind.host)) {
        out.push_back({Severity::Medium, "plaintext-listener", subject,
                       "accepts plaintext MQTT on " + where +
                           " (loopback only, but any local process can read credentials and "
                           "messages or impersonate devices)",
                       "add a tls: section with cert, key and client_ca"});
    } else {
        out.push_back({Severity::High, "plaintext-listener", subject,
                       "accepts plaintext MQTT on " + where +
                           ": passwords and messages cross the network unencrypted",
                       "add a tls: section with cert, key and client_ca, or bind it to "
                       "127.0.0.1"});
    }
}

// FFDHE groups in tls.groups: the client picks the group, so with ffdhe6144/8192 on offer any
// client can make the gateway spend ~100 ms of CPU per handshake (X25519: ~1 ms).
void auditGroups(const config::TlsConfig& tls, const std::string& subject, Findings& out) {
    std::string ffdhe;
    size_t i = 0;
    while (i <= tls.groups.size()) {
        size_t end = tls.groups.find_first_of(":,", i);
        if (end == std::string::npos) end = tls.groups.size();
        const std::string name = tls.groups.substr(i, end - i);
        i = end + 1;
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower.rfind("ffdhe", 0) == 0) ffdhe += (ffdhe.empty() ? "" : ", ") + name;
    }
    if (ffdhe.empty()) return;
    out.push_back({Severity::Medium, "ffdhe-groups", subject,
                   "groups \"" + tls.groups + "\" offers finite-field key exchange (" + ffdhe +
                       "): any client can choose it and make the gateway spend up to ~100 ms "
                       "of CPU per handshake (X25519: ~1 ms)",
                   "use groups: \"X25519:P-256:P-384\" (the default)"});
}

void auditTlsSettings(const config::TlsConfig& tls, const std::string& subject, Findings& out) {
    auditGroups(tls, subject, out);
    if (tls.minVersion != "1.2" && tls.minVersion != "1.3") {
        out.push_back({Severity::High, "tls-min-version", subject,
                       "min_version \"" + tls.minVersion +
                           "\" allows protocol versions below TLS 1.2 (SSLv3/TLS 1.0/1.1 are "
                           "broken or deprecated)",
                       "set min_version: \"1.2\" (or \"1.3\")"});
    }
    if (!tls.ciphers.empty()) {
        const auto weak = weakCiphers(tls.ciphers);
        if (!weak.empty()) {
            Severity worst = Severity::Low;
            for (const auto& w : weak) worst = std::min(worst, w.severity);
            out.push_back({worst, "weak-ciphers", subject,
                           "ciphers \"" + tls.ciphers +
                               "\" enables weak TLS 1.2 suites: " + describeWeaknesses(weak),
                           "use ciphers: \"ECDHE+AESGCM:ECDHE+CHACHA20\""});
        }
    }
}

}  // namespace

void auditListeners(const config::Config& config, Findings& out) {
    const bool passwords = passwordFactorConfigured(config.auth);
    const bool certificates = config.auth.hasMethod(config::AuthMethod::Certificate);
    for (const auto& l : config.listeners) {
        const std::string subject = "listener " + l.name;
        if (!l.tls) {
            auditPlaintext(l, subject, out);
        } else {
            auditTlsSettings(*l.tls, subject, out);
        }

        // A device is authenticated by a verified certificate or a password; a listener that
        // can do neither lets any client that reaches it talk to the broker.
        const bool verifiesCerts =
            l.tls && certificates && l.tls->requireClientCert && !l.tls->clientCa.empty();
        if (!verifiesCerts && !passwords) {
            std::string why;
            if (!l.tls) {
                why = "plaintext (no client certificates possible)";
            } else if (!certificates) {
                why = "the certificate method is not in auth.methods";
            } else if (l.tls->clientCa.empty()) {
                why = "no client_ca";
            } else {
                why = "require_client_cert is false";
            }
            out.push_back({Severity::High, "no-client-auth", subject,
                           "verifies no client certificate (" + why +
                               ") and no password method is configured: any client that "
                               "reaches it is accepted",
                           "set tls.client_ca with require_client_cert: true, or add password "
                           "to auth.methods with an auth.password_file"});
        }

        // Browsers present a client certificate by themselves, to any page's WebSocket: without
        // an Origin allowlist a hostile page the user visits opens an authenticated socket.
        const bool acceptsCerts = l.tls && certificates && !l.tls->clientCa.empty();
        if (l.websocket && acceptsCerts && !l.websocket->allowedOrigins) {
            out.push_back({Severity::High, "websocket-no-origins", subject,
                           "accepts client certificates over WebSocket without "
                           "websocket.allowed_origins: any web page the certificate's owner "
                           "visits can open an authenticated MQTT session from their browser "
                           "(cross-site WebSocket hijacking)",
                           "list the dashboard origins in websocket.allowed_origins"});
        }

        if (verifiesCerts && l.tls->crl.empty()) {
            out.push_back({Severity::Low, "no-crl", subject,
                           "mTLS without a CRL: a stolen or retired device certificate stays "
                           "valid until it expires",
                           "publish a CRL from your CA and set tls.crl (reloaded on SIGHUP)"});
        }
    }
}

}  // namespace moat::audit::detail
