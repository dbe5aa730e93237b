#include "gateway/net/BackendResolver.h"

#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

#include "gateway/net/Log.h"

namespace moat::net {

struct BackendResolver::Lookup {
    uv_getaddrinfo_t req{};
    BackendResolver* self = nullptr;  // null once the resolver closed
    config::HostPort address;
};

namespace {

bool parseLiteral(const config::HostPort& a, sockaddr_storage& out) {
    return uv_ip4_addr(a.host.c_str(), a.port, reinterpret_cast<sockaddr_in*>(&out)) == 0 ||
           uv_ip6_addr(a.host.c_str(), a.port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

addrinfo streamHints() {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    return hints;
}

}  // namespace

BackendResolver::~BackendResolver() {
    close();
}

bool BackendResolver::resolveNow(const config::HostPort& address, sockaddr_storage& out) {
    if (parseLiteral(address, out)) return true;
    addrinfo hints = streamHints(), *res = nullptr;
    int r = getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &res);
    const bool ok = r == 0 && res;
    if (ok) {
        std::memset(&out, 0, sizeof out);
        std::memcpy(&out, res->ai_addr, std::min<size_t>(res->ai_addrlen, sizeof out));
    }
    if (res) freeaddrinfo(res);
    return ok;
}

void BackendResolver::set(const config::HostPort& address) {
    sockaddr_storage ss{};
    std::optional<sockaddr_storage> resolved;
    if (resolveNow(address, ss)) resolved = ss;
    adopt(address, resolved);
}

void BackendResolver::adopt(const config::HostPort& address,
                            const std::optional<sockaddr_storage>& resolved) {
    address_ = address;
    sockaddr_storage ss{};
    literal_ = parseLiteral(address, ss);
    if (literal_) return;  // parsed where it is used
    if (resolved) {
        resolvedTo(address, reinterpret_cast<const sockaddr*>(&*resolved), sizeof *resolved);
        return;
    }
    {
        std::lock_guard lock(mu_);
        if (current_.address == address.toString()) return;  // keep the earlier answer
    }
    failedFor(address, "devices are refused until it does");
}

void BackendResolver::resolvedTo(const config::HostPort& address, const sockaddr* sa,
                                 socklen_t len) {
    store(address, sa, len);
    if (failing_) MOAT_LOG_INFO("backend %s resolves again", address.toString().c_str());
    failing_ = false;
}

// Logged once per outage: every health-check tick would otherwise repeat it.
void BackendResolver::failedFor(const config::HostPort& address, const char* consequence) {
    if (!failing_)
        MOAT_LOG_WARN("backend %s does not resolve: %s", address.toString().c_str(), consequence);
    failing_ = true;
}

void BackendResolver::refresh() {
    if (literal_ || inFlight_ || address_.host.empty()) return;
    auto* l = new Lookup;
    l->self = this;
    l->address = address_;
    l->req.data = l;
    addrinfo hints = streamHints();
    if (uv_getaddrinfo(loop_, &l->req, onResolved, l->address.host.c_str(),
                       std::to_string(l->address.port).c_str(), &hints) != 0) {
        delete l;
        return;
    }
    inFlight_ = l;
}

void BackendResolver::onResolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* l = static_cast<Lookup*>(req->data);
    BackendResolver* self = l->self;
    if (self) {
        self->inFlight_ = nullptr;
        const bool current =
            l->address.host == self->address_.host && l->address.port == self->address_.port;
        if (status == 0 && res && current)
            self->resolvedTo(l->address, res->ai_addr, res->ai_addrlen);
        else if (status != 0 && current)
            self->failedFor(l->address, "keeping the last address");
    }
    uv_freeaddrinfo(res);
    delete l;
}

void BackendResolver::close() {
    if (!inFlight_) return;
    inFlight_->self = nullptr;  // its callback still runs (cancelled or not) and frees it
    uv_cancel(reinterpret_cast<uv_req_t*>(&inFlight_->req));
    inFlight_ = nullptr;
}

void BackendResolver::store(const config::HostPort& address, const sockaddr* sa, socklen_t len) {
    const std::string key = address.toString();
    std::lock_guard lock(mu_);
    if (current_.address != key) {
        previous_ = current_;
        current_.address = key;
    }
    std::memset(&current_.resolved, 0, sizeof current_.resolved);
    std::memcpy(&current_.resolved, sa, std::min<size_t>(len, sizeof current_.resolved));
}

bool BackendResolver::lookup(const config::HostPort& address, sockaddr_storage& out) const {
    if (parseLiteral(address, out)) return true;  // no lock, no string for the common case
    const std::string key = address.toString();
    std::lock_guard lock(mu_);
    for (const Entry* e : {&current_, &previous_}) {
        if (!e->address.empty() && e->address == key) {
            out = e->resolved;
            return true;
        }
    }
    return false;
}

}  // namespace moat::net
