#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "gateway/metrics/HttpEndpoint.h"

using moat::metrics::HttpEndpoint;

namespace {

// Drives the endpoint's loop from the test thread; clients are plain blocking sockets (a
// loopback connect completes in the kernel's backlog before the endpoint accepts it).
struct Fixture {
    uv_loop_t loop{};
    bool healthy = true;
    std::unique_ptr<HttpEndpoint> http;
    std::vector<int> fds;

    explicit Fixture(std::chrono::milliseconds headTimeout = HttpEndpoint::kHeadTimeout) {
        uv_loop_init(&loop);
        http = std::make_unique<HttpEndpoint>(
            &loop, "127.0.0.1", 0, "/metrics", [] { return std::string("m 1\n"); },
            [this] { return healthy; });
        http->setHeadTimeout(headTimeout);
        std::string error;
        REQUIRE(http->start(error));
    }
    ~Fixture() {
        for (int fd : fds) ::close(fd);
        http.reset();
        for (int i = 0; i < 10; ++i) uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
    }

    void pump(int rounds = 20) {
        for (int i = 0; i < rounds; ++i) uv_run(&loop, UV_RUN_NOWAIT);
    }

    // A connected socket from `source` (any 127.0.0.0/8 address is local on Linux).
    int connectFrom(const char* source = "127.0.0.1") {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        inet_pton(AF_INET, source, &local.sin_addr);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(http->boundPort());
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        fds.push_back(fd);
        pump();  // accepted now, in order
        return fd;
    }

    // Reads until the server closes (bounded); "" if it never answers.
    std::string readAll(int fd, int maxMs = 5000) {
        std::string out;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(maxMs);
        while (std::chrono::steady_clock::now() < deadline) {
            uv_run(&loop, UV_RUN_NOWAIT);
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 5) <= 0) continue;
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            out.append(buf, static_cast<size_t>(n));
        }
        return out;
    }

    std::string request(const std::string& head, const char* source = "127.0.0.1") {
        const int fd = connectFrom(source);
        REQUIRE(::send(fd, head.data(), head.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(head.size()));
        return readAll(fd);
    }

    std::string get(const std::string& path, const char* source = "127.0.0.1") {
        return request("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", source);
    }
};

std::string statusLine(const std::string& response) {
    return response.substr(0, response.find("\r\n"));
}

bool closedByServer(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

}  // namespace

TEST_CASE("health, metrics and errors") {
    Fixture f;
    CHECK(statusLine(f.get("/healthz")) == "HTTP/1.1 200 OK");
    f.healthy = false;
    CHECK(statusLine(f.get("/healthz")) == "HTTP/1.1 503 Service Unavailable");
    f.healthy = true;
    const auto metrics = f.get("/metrics?x=1");
    CHECK(statusLine(metrics) == "HTTP/1.1 200 OK");
    CHECK(metrics.find("\r\n\r\nm 1\n") != std::string::npos);
    CHECK(statusLine(f.get("/nope")) == "HTTP/1.1 404 Not Found");
    CHECK(statusLine(f.request("POST /healthz HTTP/1.1\r\n\r\n")) ==
          "HTTP/1.1 405 Method Not Allowed");
    CHECK(statusLine(f.request("GET healthz HTTP/1.1\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
    CHECK(statusLine(f.request("GET /healthz HTTP/2.0\r\n\r\n")) ==
          "HTTP/1.1 505 HTTP Version Not Supported");
    const auto head = f.request("HEAD /healthz HTTP/1.1\r\n\r\n");
    CHECK(statusLine(head) == "HTTP/1.1 200 OK");
    CHECK(head.substr(head.find("\r\n\r\n") + 4).empty());
}

TEST_CASE("idle sockets from one address cannot keep the health check out") {
    Fixture f;
    for (int i = 0; i < 70; ++i) f.connectFrom("127.0.0.1");
    CHECK(f.http->openConnections() <= HttpEndpoint::kMaxConnectionsPerAddress);
    for (int i = 0; i < 5; ++i) CHECK(statusLine(f.get("/healthz")) == "HTTP/1.1 200 OK");
    CHECK(f.http->evictions() > 0);
}

TEST_CASE("the per-address cap closes that address's oldest idle socket, not others'") {
    Fixture f;
    const int other = f.connectFrom("127.0.0.9");
    std::vector<int> mine;
    for (size_t i = 0; i < HttpEndpoint::kMaxConnectionsPerAddress + 1; ++i)
        mine.push_back(f.connectFrom("127.0.0.1"));
    f.pump();
    CHECK(closedByServer(mine.front()));  // the oldest from the capped address
    CHECK_FALSE(closedByServer(mine.back()));
    CHECK_FALSE(closedByServer(other));
    CHECK(f.http->openConnections() == HttpEndpoint::kMaxConnectionsPerAddress + 1);
}

TEST_CASE("idle sockets from many addresses cannot keep the health check out") {
    Fixture f;
    for (int a = 2; a < 12; ++a) {
        const std::string source = "127.0.0." + std::to_string(a);
        for (size_t i = 0; i < HttpEndpoint::kMaxConnectionsPerAddress; ++i)
            f.connectFrom(source.c_str());
    }
    CHECK(f.http->openConnections() <= HttpEndpoint::kMaxConnections);
    for (int i = 0; i < 5; ++i) CHECK(statusLine(f.get("/healthz")) == "HTTP/1.1 200 OK");
}

TEST_CASE("a request head that does not arrive within the head deadline is closed") {
    Fixture f(std::chrono::milliseconds(50));
    const int idle = f.connectFrom();
    const int partial = f.connectFrom();
    REQUIRE(::send(partial, "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL) == 23);
    CHECK(f.readAll(idle).empty());  // closed without an answer
    CHECK(f.readAll(partial).empty());
    CHECK(f.http->openConnections() == 0);
    // A prompt request is still answered.
    CHECK(statusLine(f.get("/healthz")) == "HTTP/1.1 200 OK");
}

TEST_CASE("a request head larger than 8 KiB is refused") {
    Fixture f;
    std::string head = "GET /healthz HTTP/1.1\r\nX: " + std::string(9000, 'a');
    CHECK(statusLine(f.request(head)) == "HTTP/1.1 431 Request Header Fields Too Large");
}
