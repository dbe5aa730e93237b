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

void BackendResolver::set(const config::HostPort& address) {
    address_ = address;
    sockaddr_storage ss{};
    literal_ = parseLiteral(address, ss);
    if (literal_) {
        store(address, reinterpret_cast<sockaddr*>(&ss), sizeof ss);
        return;
    }
    {
        std::lock_guard lock(mu_);
        if (have_ && resolvedFor_ == address.toString()) return;  // unchanged by a reload
    }
    // A new host name: resolve it now, on the main loop (at start, nothing is served yet;
    // on a reload, the main loop carries no traffic).
    addrinfo hints = streamHints(), *res = nullptr;
    int r = getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &res);
    if (r == 0 && res) {
        store(address, res->ai_addr, res->ai_addrlen);
        failing_ = false;
    } else {
        MOAT_LOG_WARN("backend %s does not resolve (%s): devices are refused until it does",
                      address.toString().c_str(), gai_strerror(r));
        failing_ = true;
    }
    if (res) freeaddrinfo(res);
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
        if (status == 0 && res && current) {
            self->store(l->address, res->ai_addr, res->ai_addrlen);
            if (self->failing_)
                MOAT_LOG_INFO("backend %s resolves again", l->address.toString().c_str());
            self->failing_ = false;
        } else if (status != 0 && current && !self->failing_) {
            self->failing_ = true;
            MOAT_LOG_WARN("backend %s does not resolve (%s): keeping the last address",
                          l->address.toString().c_str(), uv_strerror(status));
        }
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
    std::lock_guard lock(mu_);
    std::memset(&resolved_, 0, sizeof resolved_);
    std::memcpy(&resolved_, sa, std::min<size_t>(len, sizeof resolved_));
    resolvedFor_ = address.toString();
    have_ = true;
}

bool BackendResolver::lookup(const config::HostPort& address, sockaddr_storage& out) const {
    if (parseLiteral(address, out)) return true;  // no lock, no string for the common case
    std::lock_guard lock(mu_);
    if (!have_ || resolvedFor_ != address.toString()) return false;
    out = resolved_;
    return true;
}

}  // namespace moat::net
