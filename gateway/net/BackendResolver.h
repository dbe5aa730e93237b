#pragma once
// The broker's address for every new connection, without a DNS lookup on the data path.
//
// An IP literal is parsed where it is used. A host name (`mqtt-broker:1883` in Kubernetes) is
// resolved once, blocking, when the gateway starts (before it accepts anything); a reload
// resolves its new address on the thread pool with the rest of the new config and hands the
// answer over (adopt); and refresh() re-resolves in the background (uv_getaddrinfo) on every
// health-check tick. Workers read the last good answer under a mutex: a lookup that fails or
// is slow keeps the previous address, so a DNS hiccup never stalls or refuses devices while
// the broker itself is fine. The previous address's answer is kept too, for connections that
// still run on the configuration before a reload. A name that never resolved fails lookup()
// (the device is refused with "server unavailable", like an unreachable broker).

#include <sys/socket.h>
#include <uv.h>

#include <mutex>
#include <optional>
#include <string>

#include "gateway/config/Config.h"

namespace moat::net {

class BackendResolver {
  public:
    explicit BackendResolver(uv_loop_t* mainLoop) : loop_(mainLoop) {}
    ~BackendResolver();
    BackendResolver(const BackendResolver&) = delete;
    BackendResolver& operator=(const BackendResolver&) = delete;

    // Main loop, at start: the address to use; a host name is resolved right away (blocking:
    // nothing is served yet).
    void set(const config::HostPort& address);
    // Main loop, on reload: the new address and what the reload's worker thread resolved it
    // to (nullopt: it did not resolve; an earlier answer for the same address is kept).
    void adopt(const config::HostPort& address, const std::optional<sockaddr_storage>& resolved);
    // Any thread (blocking): `address` resolved now. False when it does not resolve.
    static bool resolveNow(const config::HostPort& address, sockaddr_storage& out);
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
    void resolvedTo(const config::HostPort& address, const sockaddr* sa, socklen_t len);
    void failedFor(const config::HostPort& address, const char* consequence);
    static void onResolved(uv_getaddrinfo_t* req, int status, addrinfo* res);

    uv_loop_t* loop_;
    config::HostPort address_;  // main loop only
    bool literal_ = false;      // main loop only
    Lookup* inFlight_ = nullptr;
    bool failing_ = false;  // the last lookup failed (logged once per outage)

    struct Entry {
        std::string address;  // HostPort::toString() this answer belongs to; empty: none
        sockaddr_storage resolved{};
    };
    mutable std::mutex mu_;
    Entry current_;
    Entry previous_;  // the address before the last change, for not-yet-switched connections
};

}  // namespace moat::net
