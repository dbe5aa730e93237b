#pragma once
// A deliberately tiny HTTP/1.1 server for the metrics port, on the caller's libuv loop (no
// extra thread, unlike prometheus-cpp's civetweb exposer, and /healthz can answer 503):
//   GET|HEAD <metricsPath>  200 text/plain; version=0.0.4
//   GET|HEAD /healthz       200 "ok" | 503 "backend unreachable"
//   GET /owners, POST /owners/release?client_id=ID   the admin handler (setAdmin), answered
//                           only to loopback peers (403 otherwise): client-id owners
//   other paths 404, other methods 405, malformed request 400, request head > 8 KiB 431.
// One request per connection (Connection: close). Nobody can hold the port (and so the
// orchestrator's health check) with idle sockets:
//  - the request head must arrive within a short deadline (kHeadTimeout), the response be
//    written within another (setTimeout);
//  - one address holds at most kMaxConnectionsPerAddress connections, all addresses together
//    kMaxConnections;
//  - at either cap the newcomer is still served: the oldest connection that is only lingering
//    or still waiting for its request head (then the oldest at all) is closed to make room.
//    A health check sends its request at once and is answered as soon as it is read, so a
//    pool of idle sockets, from one address or many, is what gives way, not the probe.
// Single-threaded: every method must be called on the loop's thread (or before it runs).

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace moat::metrics {

class HttpEndpoint {
  public:
    static constexpr size_t kMaxRequestBytes = 8 * 1024;
    static constexpr size_t kMaxConnections = 64;
    static constexpr size_t kMaxConnectionsPerAddress = 8;
    static constexpr std::chrono::milliseconds kDefaultTimeout{10000};
    static constexpr std::chrono::milliseconds kHeadTimeout{2000};

    // `host` is an IPv4 or IPv6 literal ("127.0.0.1", "::", "::1"); port 0 picks a free port.
    HttpEndpoint(uv_loop_t* loop, std::string host, uint16_t port, std::string metricsPath,
                 std::function<std::string()> metricsBody, std::function<bool()> healthy);
    ~HttpEndpoint();  // close()s; libuv frees the handles on the loop's next iteration
    HttpEndpoint(const HttpEndpoint&) = delete;
    HttpEndpoint& operator=(const HttpEndpoint&) = delete;

    bool start(std::string& error);
    uint16_t boundPort() const { return boundPort_; }
    // Stops listening and closes every open connection. Idempotent.
    void close();

    // Admin requests (paths under /owners), from loopback peers only: the handler gets the
    // method, the path and the raw query string and answers status + JSON body. Set before
    // start(). The metrics port is otherwise read-only; these change nothing but client-id
    // owners, and only for someone already on the gateway's host (or pod).
    struct AdminResponse {
        int status = 404;
        std::string body;
    };
    using AdminHandler = std::function<AdminResponse(std::string_view method, std::string_view path,
                                                     std::string_view query)>;
    void setAdmin(AdminHandler handler) { admin_ = std::move(handler); }

    // Deadline from the request head to the response sent (set before start()).
    void setTimeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
    // Deadline from accept to the end of the request head (set before start()).
    void setHeadTimeout(std::chrono::milliseconds timeout) { headTimeout_ = timeout; }
    size_t openConnections() const { return connections_; }
    // Connections closed to make room for a newer one (per-address or total cap).
    uint64_t evictions() const { return evictions_; }

    struct Connection;  // implementation detail, public for the C callbacks

  private:
    friend struct Connection;
    static void onConnection(uv_stream_t* server, int status);
    void respond(Connection& c);
    // Closes the connection that should give way to a newcomer (never `except`); false when
    // there is none. `peer` empty = any address.
    bool evictFor(const Connection& except, const std::string& peer);

    uv_loop_t* loop_;
    std::string host_;
    uint16_t port_;
    std::string metricsPath_;
    std::function<std::string()> metricsBody_;
    std::function<bool()> healthy_;
    AdminHandler admin_;
    std::chrono::milliseconds timeout_ = kDefaultTimeout;
    std::chrono::milliseconds headTimeout_ = kHeadTimeout;
    uint64_t evictions_ = 0;
    uv_tcp_t* server_ = nullptr;  // owned by libuv until its close callback
    uint16_t boundPort_ = 0;
    size_t connections_ = 0;
    Connection* head_ = nullptr;  // intrusive list of live connections, newest first
};

}  // namespace moat::metrics
