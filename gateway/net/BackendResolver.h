#pragma once
// The broker's address for every new connection, without a DNS lookup on the data path.
//
// An IP literal is parsed once. A host name (`mqtt-broker:1883` in Kubernetes) is resolved
// on the main loop: once, blocking, when the gateway starts (before it accepts anything), then
// asynchronously (uv_getaddrinfo, the libuv thread pool) whenever refresh() is called — the
// health-check tick. Workers read the last good answer under a mutex: a lookup that fails or
// is slow keeps the previous address, so a DNS hiccup never stalls or refuses devices while
// the broker itself is fine. Before any lookup succeeded, lookup() fails (the connection is
// refused with "server unavailable", like an unreachable broker).

#include <sys/socket.h>
#include <uv.h>

#include <mutex>
#include <string>

#include "gateway/config/Config.h"

namespace moat::net {

class BackendResolver {
  public:
    explicit BackendResolver(uv_loop_t* mainLoop) : loop_(mainLoop) {}
    ~BackendResolver();
    BackendResolver(const BackendResolver&) = delete;
    BackendResolver& operator=(const BackendResolver&) = delete;

    // Main loop: the address to resolve from now on (start, reload). A new host name is
    // resolved right away (blocking only the first time, at start).
    void set(const config::HostPort& address);
    // Main loop: re-resolve a host name in the background; no-op for an IP literal or while
    // a lookup is in flight.
    void refresh();
    // Main loop: no lookup may complete after this (shutdown).
    void close();

    // Any thread: the last good address for `address` (port included). False when it never
    // resolved, or when `address` is not what set() was given last (a reload in progress).
    bool lookup(const config::HostPort& address, sockaddr_storage& out) const;

  private:
    struct Lookup;
    void store(const config::HostPort& address, const sockaddr* sa, socklen_t len);
    static void onResolved(uv_getaddrinfo_t* req, int status, addrinfo* res);

    uv_loop_t* loop_;
    config::HostPort address_;  // main loop only
    bool literal_ = false;      // main loop only
    Lookup* inFlight_ = nullptr;
    bool failing_ = false;  // the last lookup failed (logged once per outage)

    mutable std::mutex mu_;
    std::string resolvedFor_;  // address.toString() that `resolved_` belongs to
    sockaddr_storage resolved_{};
    bool have_ = false;
};

}  // namespace moat::net
