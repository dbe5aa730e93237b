// Client-id ownership at the process level (auth.protect_client_ids, CONTRACT §3): the shared
// OwnershipTable, its cluster side (owners shared through Redis) and the operators' admin
// requests on the metrics port (GET /owners, POST /owners/release?client_id=ID).

#include <chrono>

#include "gateway/metrics/JsonEscape.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"

namespace moat::net {

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The value of `name` in an application/x-www-form-urlencoded query; nullopt when absent or
// badly escaped.
std::optional<std::string> queryValue(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const size_t eq = pair.find('=');
        if (pair.substr(0, eq) != name || eq == std::string_view::npos) continue;
        std::string out;
        std::string_view v = pair.substr(eq + 1);
        for (size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '+') {
                out.push_back(' ');
            } else if (v[i] == '%') {
                if (i + 2 >= v.size()) return std::nullopt;
                const int hi = hexDigit(v[i + 1]), lo = hexDigit(v[i + 2]);
                if (hi < 0 || lo < 0) return std::nullopt;
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
            } else {
                out.push_back(v[i]);
            }
        }
        return out;
    }
    return std::nullopt;
}

}  // namespace

inspect::OwnershipTable::Claim Gateway::claimClientId(const std::string& clientId,
                                                      const std::string& identity) {
    const auto now = SteadyClock::now();
    inspect::OwnershipTable::Claim claim;
    milliseconds hold{0};
    {
        std::lock_guard lock(ownersMutex_);
        claim = owners_.claim(clientId, identity, now);
        if (claim.granted) hold = owners_.shareableHold(clientId, now);
        metrics_.clientIdOwners().Set(static_cast<double>(owners_.size()));
    }
    if (claim.granted && cluster_) cluster_->ownerChanged(clientId, identity, hold);
    return claim;
}

void Gateway::releaseClientId(const std::string& clientId, const std::string& identity,
                              std::optional<uint32_t> sessionExpiry,
                              std::vector<std::string> subscriptions) {
    const auto now = SteadyClock::now();
    std::optional<inspect::OwnershipTable::Owner> after;
    {
        std::lock_guard lock(ownersMutex_);
        owners_.release(clientId, identity, sessionExpiry, now, std::move(subscriptions));
        after = owners_.owner(clientId, now);
        metrics_.clientIdOwners().Set(static_cast<double>(owners_.size()));
    }
    if (!cluster_) return;
    if (!after) {
        cluster_->ownerChanged(clientId, identity, milliseconds(0));
    } else if (after->identity == identity && after->connections == 0) {
        cluster_->ownerChanged(clientId, identity, after->remaining);
    }
}

void Gateway::onSharedOwner(const std::string& clientId, const std::string& identity,
                            milliseconds remaining) {
    std::lock_guard lock(ownersMutex_);
    owners_.adopt(clientId, identity, remaining, SteadyClock::now());
    metrics_.clientIdOwners().Set(static_cast<double>(owners_.size()));
}

std::vector<cluster::SharedOwner> Gateway::activeLocalOwners() {
    const auto now = SteadyClock::now();
    std::vector<cluster::SharedOwner> out;
    std::lock_guard lock(ownersMutex_);
    for (const auto& o : owners_.list(now)) {
        if (o.remote) continue;
        out.push_back({o.clientId, o.identity, owners_.shareableHold(o.clientId, now)});
    }
    return out;
}

void Gateway::sweepOwners() {
    std::lock_guard lock(ownersMutex_);
    owners_.expire(SteadyClock::now());
    metrics_.clientIdOwners().Set(static_cast<double>(owners_.size()));
}

metrics::HttpEndpoint::AdminResponse Gateway::ownersRequest(std::string_view method,
                                                            std::string_view path,
                                                            std::string_view query) {
    metrics::HttpEndpoint::AdminResponse r;
    const auto now = SteadyClock::now();
    if (path == "/owners" && (method == "GET" || method == "HEAD")) {
        std::vector<inspect::OwnershipTable::Owner> owners;
        {
            std::lock_guard lock(ownersMutex_);
            owners = owners_.list(now);
        }
        r.status = 200;
        r.body.push_back('[');  // (not `= "["`: GCC 12's -Wrestrict false positive)
        for (size_t i = 0; i < owners.size(); ++i) {
            const auto& o = owners[i];
            if (i) r.body += ",";
            r.body += "\n{\"client_id\":";
            metrics::appendJsonString(r.body, o.clientId);
            r.body += ",\"identity\":";
            metrics::appendJsonString(r.body, o.identity);
            r.body += ",\"connected\":";
            r.body += o.connections > 0 ? "true" : "false";
            r.body += ",\"remaining_seconds\":";
            r.body += o.connections > 0 ? "null" : std::to_string(o.remaining.count() / 1000);
            r.body += ",\"replica\":";
            r.body += o.remote ? "\"remote\"" : "\"local\"";
            r.body += "}";
        }
        r.body += "\n]\n";
        return r;
    }
    if (path == "/owners/release" && method == "POST") {
        auto clientId = queryValue(query, "client_id");
        if (!clientId || clientId->empty()) {
            r.status = 400;
            r.body = "{\"error\":\"client_id missing or badly escaped\"}\n";
            return r;
        }
        std::optional<inspect::OwnershipTable::Owner> was;
        bool released;
        {
            std::lock_guard lock(ownersMutex_);
            was = owners_.owner(*clientId, now);
            released = owners_.forceRelease(*clientId);
            metrics_.clientIdOwners().Set(static_cast<double>(owners_.size()));
        }
        if (released && was) {
            if (cluster_) cluster_->ownerChanged(*clientId, was->identity, milliseconds(0));
            audit("owner_released", "", "", *clientId, was->identity, "", "", "", "",
                  "released by an operator");
            MOAT_LOG_INFO("client id %s released by an operator",
                          metrics::quoteForLog(*clientId).c_str());
        }
        r.status = 200;
        r.body = std::string("{\"released\":") + (released && was ? "true" : "false") + "}\n";
        return r;
    }
    r.status = path == "/owners" || path == "/owners/release" ? 405 : 404;
    r.body = "{\"error\":\"use GET /owners or POST /owners/release?client_id=ID\"}\n";
    return r;
}

}  // namespace moat::net
