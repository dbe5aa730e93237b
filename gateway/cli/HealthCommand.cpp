// `moat health -c FILE`: asks a running gateway's /healthz (on metrics.bind) whether it can
// reach its broker. Exit 0 on HTTP 200, 1 otherwise. For container HEALTHCHECKs and probes
// in images that ship no curl.

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "gateway/cli/Commands.h"
#include "gateway/config/Config.h"

namespace moat::cli {

// A wildcard bind is reachable on loopback.
std::string probeHost(const std::string& host) {
    if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
    if (host == "::") return "::1";
    return host;
}

int localHttpRequest(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& path, std::string* body) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
    int status = -1;
    for (addrinfo* ai = res; ai && status < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        timeval tv{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            std::string req = method + " " + path + " HTTP/1.0\r\nHost: " + host +
                              "\r\nContent-Length: 0\r\n\r\n";
            std::string response;
            if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
                // Bounded: the server closes after one response; at most 64 MiB is read.
                char buf[4096];
                ssize_t n;
                while (response.size() < (64u << 20) && (n = read(fd, buf, sizeof buf)) > 0)
                    response.append(buf, static_cast<size_t>(n));
            }
            if (response.size() > 12) std::sscanf(response.c_str(), "HTTP/%*d.%*d %d", &status);
            if (body) {
                const size_t end = response.find("\r\n\r\n");
                *body = end == std::string::npos ? std::string() : response.substr(end + 4);
            }
        }
        close(fd);
    }
    freeaddrinfo(res);
    return status;
}

int healthCommand(const Args& args) {
    std::string path = configPathArg(args);
    if (path.empty()) {
        std::fprintf(stderr, "usage: moat health -c FILE\n");
        return 1;
    }
    config::LoadResult r = config::loadConfigFile(path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.toString().c_str());
    if (!r.config) return 1;
    const auto& bind = r.config->metrics.bind;
    int status = localHttpRequest(probeHost(bind.host), bind.port, "GET", "/healthz", nullptr);
    std::printf("%s\n", status == 200 ? "healthy"
                        : status < 0  ? "unreachable"
                                      : "unhealthy (broker unreachable)");
    return status == 200 ? 0 : 1;
}

}  // namespace moat::cli
