// `listeners:` — binds, TLS, workers, PROXY protocol.

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

#include "gateway/config/FileCheck.h"
#include "gateway/config/Parse.h"
#include "gateway/config/Scalars.h"

namespace moat::config::detail {
namespace {

constexpr uint32_t kMaxWorkers = 256;

// Listener names end up in metric labels and log lines: keep them plain.
bool isPlainName(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.';
    });
}

// TLS key exchange groups Moat accepts in `tls.groups`, canonical spelling first. A fixed list
// (not "whatever this OpenSSL knows"): OpenSSL also takes binary and sub-112-bit curves
// (sect163k1, secp160r1, ...) that have no place on a gateway. FFDHE is accepted (moat audit
// flags it: a client can then force the expensive big groups).
struct GroupName {
    const char* canonical;
    const char* alias;  // another spelling OpenSSL knows, or null
};
constexpr GroupName kGroups[] = {
    {"X25519", nullptr},          {"X448", nullptr},
    {"P-256", "prime256v1"},      {"P-384", "secp384r1"},
    {"P-521", "secp521r1"},       {"ffdhe2048", nullptr},
    {"ffdhe3072", nullptr},       {"ffdhe4096", nullptr},
    {"ffdhe6144", nullptr},       {"ffdhe8192", nullptr},
    {"brainpoolP256r1", nullptr}, {"brainpoolP384r1", nullptr},
    {"brainpoolP512r1", nullptr},
};

bool sameName(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

const char* canonicalGroup(std::string_view name) {
    if (sameName(name, "secp256r1")) return "P-256";
    for (const GroupName& g : kGroups) {
        if (sameName(name, g.canonical) || (g.alias && sameName(name, g.alias))) return g.canonical;
    }
    return nullptr;
}

// "X25519:P-256:P-384" (':' or ',' separated, as OpenSSL takes it): every name known, none
// twice, at least one. Stored with ':' and canonical names.
void readGroups(Diagnostics& d, const Field& f, std::string& out) {
    std::string text;
    if (!readString(d, f, text)) return;
    std::string result;
    std::vector<std::string_view> seen;
    size_t i = 0;
    bool ok = true;
    while (i <= text.size()) {
        size_t end = text.find_first_of(":,", i);
        if (end == std::string::npos) end = text.size();
        std::string_view name = std::string_view(text).substr(i, end - i);
        while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
        while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
        i = end + 1;
        const char* canonical = canonicalGroup(name);
        if (canonical == nullptr) {
            std::string known;
            for (const GroupName& g : kGroups)
                known += std::string(known.empty() ? "" : ", ") + g.canonical;
            d.error(f.line, f.path + ": unknown key exchange group " + quoteValue(name) +
                                " (expected a ':'-separated list of " + known + ")");
            ok = false;
            continue;
        }
        if (std::find(seen.begin(), seen.end(), canonical) != seen.end()) {
            d.error(f.line, f.path + ": group " + canonical + " listed twice");
            ok = false;
            continue;
        }
        seen.push_back(canonical);
        if (!result.empty()) result += ':';
        result += canonical;
    }
    if (ok) out = result;
}

void parseTls(LoadContext& ctx, MapReader& m, TlsConfig& tls) {
    Diagnostics& d = ctx.diag;
    if (auto f = m.take("cert")) {
        readFilePath(ctx, *f, tls.cert);
    } else {
        d.error(m.line(), "missing required key 'cert' in " + m.path());
    }
    if (auto f = m.take("key")) {
        readFilePath(ctx, *f, tls.key);
    } else {
        d.error(m.line(), "missing required key 'key' in " + m.path());
    }
    bool clientCaGiven = false;
    if (auto f = m.take("client_ca")) {
        clientCaGiven = true;
        readFilePath(ctx, *f, tls.clientCa);
    }
    std::optional<Field> crl = m.take("crl");
    if (crl) readFilePath(ctx, *crl, tls.crl);
    std::optional<Field> require = m.take("require_client_cert");
    if (require) readBool(d, *require, tls.requireClientCert);
    if (auto f = m.take("min_version")) {
        // Stored as written: the TLS layer maps it to an OpenSSL protocol version.
        int v = 0;
        if (readEnum<int>(d, *f, v, {{"1.2", 12}, {"1.3", 13}})) {
            tls.minVersion = v == 12 ? "1.2" : "1.3";
        }
    }
    if (auto f = m.take("ciphers")) readString(d, *f, tls.ciphers);
    if (auto f = m.take("ciphersuites")) readString(d, *f, tls.ciphersuites);
    if (auto f = m.take("groups")) readGroups(d, *f, tls.groups);
    if (auto f = m.take("verify_cache")) readBool(d, *f, tls.verifyCache);
    if (auto f = m.take("session_tickets")) readBool(d, *f, tls.sessionTickets);
    m.finish();

    // A missing client_ca that was given but unreadable is already reported.
    if (tls.requireClientCert && !clientCaGiven) {
        if (require) {
            d.error(require->line, require->path +
                                       ": true needs client_ca (the CA that signs "
                                       "client certificates)");
        } else {
            d.error(m.line(), m.path() +
                                  ": require_client_cert is true by default and needs "
                                  "client_ca; set client_ca, or require_client_cert: false");
        }
    }
    if (crl && !clientCaGiven) {
        d.error(crl->line, crl->path + ": a CRL needs client_ca (it revokes client certificates)");
    }
}

bool readWorkers(Diagnostics& d, const Field& f, int& out) {
    const std::string expected = "auto or an integer 1.." + std::to_string(kMaxWorkers);
    const std::string* s = scalarOf(d, f, expected);
    if (!s) return false;
    if (*s == "auto") {
        out = 0;
        return true;
    }
    auto v = parseUint(*s, kMaxWorkers);
    if (!v || *v == 0) {
        d.error(f.line, f.path + ": bad value " + quoteValue(*s) + " (expected " + expected + ")");
        return false;
    }
    out = static_cast<int>(*v);
    return true;
}

bool readTrustedProxies(Diagnostics& d, const Field& f, std::vector<std::string>& out) {
    auto items = openList(d, f);
    if (!items) return false;
    bool ok = true;
    for (const auto& item : *items) {
        std::string text;
        if (!readString(d, item, text)) {
            ok = false;
            continue;
        }
        CidrResult cidr = parseCidr(text);
        if (!cidr.ok()) {
            d.error(item.line, item.path + ": bad CIDR " + quoteValue(text) + ": " + cidr.error);
            ok = false;
            continue;
        }
        out.push_back(std::move(cidr.normalized));
    }
    return ok;
}

// An origin as browsers send it: scheme "://" host [":" port], nothing after (no path, no
// trailing '/'). Compared without case, so stored in lowercase.
bool readOrigin(Diagnostics& d, const Field& f, std::string& out) {
    std::string text;
    if (!readString(d, f, text)) return false;
    std::string lower;
    for (char c : text) lower += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    const size_t sep = lower.find("://");
    const std::string scheme = sep == std::string::npos ? "" : lower.substr(0, sep);
    const std::string host = sep == std::string::npos ? "" : lower.substr(sep + 3);
    const bool ok = (scheme == "https" || scheme == "http") && !host.empty() &&
                    std::all_of(host.begin(), host.end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                               c == '.' || c == ':' || c == '[' || c == ']';
                    });
    if (!ok) {
        d.error(f.line, f.path + ": bad origin " + quoteValue(text) +
                            " (expected scheme://host[:port] as browsers send it, e.g. "
                            "https://dashboard.example.com, without a path)");
        return false;
    }
    out = lower;
    return true;
}

// `listener` has its proxy_protocol and trusted_proxies read (proxiesOk: without errors).
void parseWebSocket(Diagnostics& d, MapReader& m, WebSocketConfig& ws,
                    const ListenerConfig& listener, bool proxiesOk) {
    if (auto f = m.take("path")) {
        std::string path;
        if (readString(d, *f, path)) {
            const bool ok = path.size() <= 256 && !path.empty() && path[0] == '/' &&
                            std::all_of(path.begin(), path.end(), [](char c) {
                                return c > 0x20 && c < 0x7f && c != '?' && c != '#';
                            });
            if (ok) {
                ws.path = path;
            } else {
                d.error(f->line, f->path + ": bad path " + quoteValue(path) +
                                     " (expected an absolute request path such as /mqtt, "
                                     "without query or spaces)");
            }
        }
    }
    if (auto f = m.take("allowed_origins")) {
        if (auto items = openList(d, *f)) {
            ws.allowedOrigins.emplace();
            for (const auto& item : *items) {
                std::string origin;
                if (readOrigin(d, item, origin)) ws.allowedOrigins->push_back(origin);
            }
            if (items->empty()) {
                d.error(f->line, f->path +
                                     ": empty list refuses every browser; list the dashboard "
                                     "origins, or leave the key out to allow any origin");
            }
        }
    }
    if (auto f = m.take("forwarded_for");
        f && readBool(d, *f, ws.forwardedFor) && ws.forwardedFor) {
        if (listener.proxyProtocol != ProxyProtocol::Off) {
            d.error(f->line, f->path +
                                 ": the PROXY header already names the client; use one of "
                                 "proxy_protocol and forwarded_for");
        } else if (proxiesOk && listener.trustedProxies.empty()) {
            d.error(f->line, f->path +
                                 ": true needs trusted_proxies (the balancers whose "
                                 "X-Forwarded-For is believed)");
        }
    }
    m.finish();
}

struct Seen {
    int nameLine;
    int bindLine;
    bool bindOk;
};

}  // namespace

bool readProxyProtocol(Diagnostics& d, const Field& f, ProxyProtocol& out, bool backend) {
    if (f.node.IsScalar() && (f.node.Scalar() == "false" || f.node.Scalar() == "False")) {
        out = ProxyProtocol::Off;
        return true;
    }
    if (backend) {
        return readEnum<ProxyProtocol>(d, f, out,
                                       {{"off", ProxyProtocol::Off}, {"v2", ProxyProtocol::V2}});
    }
    return readEnum<ProxyProtocol>(d, f, out,
                                   {{"off", ProxyProtocol::Off},
                                    {"v1", ProxyProtocol::V1},
                                    {"v2", ProxyProtocol::V2},
                                    {"any", ProxyProtocol::Any}});
}

bool bindsConflict(const HostPort& a, const HostPort& b) {
    if (a.port != b.port || a.port == 0) return false;  // port 0: each gets its own free port
    if (a.host == b.host) return true;
    auto covers = [](const HostPort& wild, const HostPort& other) {
        return (wild.host == "0.0.0.0" && isIpv4Literal(other.host)) ||
               (wild.host == "::" && isIpv6Literal(other.host));
    };
    return covers(a, b) || covers(b, a);
}

void parseListeners(LoadContext& ctx, const Field& f, std::vector<ListenerConfig>& out) {
    Diagnostics& d = ctx.diag;
    auto items = openList(d, f);
    if (!items) return;
    if (items->empty()) {
        d.error(f.line, "listeners: at least one listener is required");
        return;
    }
    std::vector<Seen> seen;
    for (size_t i = 0; i < items->size(); ++i) {
        const Field& item = (*items)[i];
        ListenerConfig l;
        l.line = item.line;
        l.name = "listener-" + std::to_string(i);
        Seen s{item.line, item.line, false};
        auto m = openMap(d, item, false);
        if (!m) {
            out.push_back(std::move(l));
            seen.push_back(s);
            continue;
        }
        if (auto nf = m->take("name")) {
            s.nameLine = nf->line;
            std::string name;
            if (readString(d, *nf, name)) {
                if (isPlainName(name)) {
                    l.name = std::move(name);
                } else {
                    d.error(nf->line, nf->path + ": bad name " + quoteValue(name) +
                                          " (use letters, digits, '.', '_' and '-', at most 64)");
                }
            }
        }
        if (auto bf = m->take("bind")) {
            s.bindLine = bf->line;
            s.bindOk = readHostPort(d, *bf, l.bind, true);
        } else {
            d.error(item.line, "missing required key 'bind' in " + item.path);
        }
        if (auto tf = m->take("tls")) {
            if (auto tm = openMap(d, *tf, false)) {
                l.tls.emplace();
                parseTls(ctx, *tm, *l.tls);
            }
        }
        if (auto wf = m->take("workers")) readWorkers(d, *wf, l.workers);
        std::optional<Field> pp = m->take("proxy_protocol");
        if (pp) readProxyProtocol(d, *pp, l.proxyProtocol, false);
        std::optional<Field> tp = m->take("trusted_proxies");
        bool proxiesOk = !tp || readTrustedProxies(d, *tp, l.trustedProxies);
        std::optional<Field> wf = m->take("websocket");
        if (wf) {
            if (auto wm = openMap(d, *wf, true)) {
                l.websocket.emplace();
                l.websocket->line = wf->line;
                parseWebSocket(d, *wm, *l.websocket, l, proxiesOk);
            }
        }
        m->finish();
        if (pp && l.proxyProtocol != ProxyProtocol::Off && proxiesOk && l.trustedProxies.empty()) {
            d.error(pp->line, pp->path +
                                  ": a PROXY header is expected but trusted_proxies is "
                                  "empty, so every connection would be refused");
        }
        out.push_back(std::move(l));
        seen.push_back(s);
    }
    for (size_t i = 0; i < out.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
            const std::string path = "listeners[" + std::to_string(i) + "]";
            const std::string other = "listeners[" + std::to_string(j) + "]";
            if (out[i].name == out[j].name) {
                d.error(seen[i].nameLine, path + ".name: duplicate listener name " +
                                              quoteValue(out[i].name) + " (also " + other +
                                              ", line " + std::to_string(seen[j].nameLine) + ")");
            }
            if (seen[i].bindOk && seen[j].bindOk && bindsConflict(out[i].bind, out[j].bind)) {
                d.error(seen[i].bindLine, path + ".bind: " + out[i].bind.toString() +
                                              " clashes with " + other + ".bind " +
                                              out[j].bind.toString() + " (line " +
                                              std::to_string(seen[j].bindLine) + ")");
            }
        }
    }
}

}  // namespace moat::config::detail
