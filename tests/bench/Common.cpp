#include <cstdio>
#include <thread>

#include "tests/bench/Commands.h"

namespace moat::bench {

std::set<std::string> clientFlags(std::set<std::string> extra) {
    extra.insert("tls");
    return extra;
}

std::set<std::string> clientValued(std::set<std::string> extra) {
    for (const char* k : {"host", "port", "ca", "cert", "key", "topic", "ws"}) extra.insert(k);
    return extra;
}

bool setupClient(Args& a, ClientSetup& out) {
    out.ep.host = a.str("host", "127.0.0.1");
    int64_t port = a.integer("port", 0);
    out.topic = a.str("topic", "bench/t");
    out.ep.wsPath = a.str("ws");
    if (!a.ok()) {
        std::fprintf(stderr, "moat-bench: %s\n", a.error().c_str());
        return false;
    }
    if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "moat-bench: --port is required (1..65535)\n");
        return false;
    }
    out.ep.port = static_cast<uint16_t>(port);
    if (a.flag("tls")) {
        TlsFiles files{a.str("ca"), a.str("cert"), a.str("key")};
        if (files.ca.empty() || files.cert.empty() != files.key.empty()) {
            std::fprintf(stderr, "moat-bench: --tls needs --ca, and --cert with --key\n");
            return false;
        }
        std::string error;
        out.tls = makeClientContext(files, error);
        if (!out.tls) {
            std::fprintf(stderr, "moat-bench: %s\n", error.c_str());
            return false;
        }
        out.ep.tls = out.tls.get();
    }
    std::string error;
    if (!parseWatched(a.all("pid"), out.watched, error)) {
        std::fprintf(stderr, "moat-bench: %s\n", error.c_str());
        return false;
    }
    return true;
}

bool parseHostPort(const std::string& s, std::string& host, uint16_t& port) {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    char* end = nullptr;
    long p = std::strtol(s.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535) return false;
    host = s.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    port = static_cast<uint16_t>(p);
    return true;
}

void sleepFor(double seconds) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

double secondsSince(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

void printResult(const std::string& json) {
    std::printf("%s\n", json.c_str());
    std::fflush(stdout);
}

}  // namespace moat::bench
