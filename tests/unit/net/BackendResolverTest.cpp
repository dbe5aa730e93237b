#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "gateway/net/BackendResolver.h"

using moat::config::HostPort;
using moat::net::BackendResolver;

namespace {

std::string text(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    uint16_t port = 0;
    if (ss.ss_family == AF_INET) {
        auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
        port = ntohs(v4->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
        port = ntohs(v6->sin6_port);
    }
    return std::string(buf) + "/" + std::to_string(port);
}

struct Loop {
    uv_loop_t loop{};
    Loop() { uv_loop_init(&loop); }
    ~Loop() {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
};

}  // namespace

TEST_CASE("IP literals need no lookup, whatever set() was given") {
    Loop l;
    BackendResolver r(&l.loop);
    sockaddr_storage ss{};
    REQUIRE(r.lookup(HostPort{"127.0.0.1", 1883}, ss));
    CHECK(text(ss) == "127.0.0.1/1883");
    REQUIRE(r.lookup(HostPort{"::1", 8883}, ss));
    CHECK(text(ss) == "::1/8883");
}

TEST_CASE("a host name is served from what the main loop resolved") {
    Loop l;
    BackendResolver r(&l.loop);
    sockaddr_storage ss{};
    const HostPort named{"localhost", 1884};
    CHECK_FALSE(r.lookup(named, ss));  // nothing resolved yet: refused, never looked up here
    r.set(named);
    REQUIRE(r.lookup(named, ss));
    const std::string first = text(ss);
    CHECK((first == "127.0.0.1/1884" || first == "::1/1884"));
    // Another port or host is not what was resolved (a reload in progress).
    CHECK_FALSE(r.lookup(HostPort{"localhost", 1885}, ss));
    // A background refresh completes on the loop and keeps an answer.
    r.refresh();
    r.refresh();  // one lookup in flight at a time
    uv_run(&l.loop, UV_RUN_DEFAULT);
    REQUIRE(r.lookup(named, ss));
    CHECK(text(ss) == first);
}

TEST_CASE("close() mid-lookup: the pending callback leaves the resolver alone") {
    Loop l;
    BackendResolver r(&l.loop);
    sockaddr_storage ss{};
    r.set(HostPort{"localhost", 1886});
    r.refresh();
    r.close();  // the pending callback must not touch the resolver
    uv_run(&l.loop, UV_RUN_DEFAULT);
    CHECK(r.lookup(HostPort{"localhost", 1886}, ss));  // the earlier answer stays
}

TEST_CASE("a reload keeps the previous answer for connections still on the old config") {
    Loop l;
    BackendResolver r(&l.loop);
    sockaddr_storage ss{};
    const HostPort before{"localhost", 1887};
    r.set(before);
    REQUIRE(r.lookup(before, ss));
    // The reload resolved its new name on the thread pool and hands the answer over.
    const HostPort after{"localhost", 1888};
    sockaddr_storage resolved{};
    REQUIRE(BackendResolver::resolveNow(after, resolved));
    r.adopt(after, resolved);
    REQUIRE(r.lookup(after, ss));
    CHECK(text(ss).substr(text(ss).find('/')) == "/1888");
    REQUIRE(r.lookup(before, ss));  // not refused mid-reload
    CHECK(text(ss).substr(text(ss).find('/')) == "/1887");
    // A later reload whose lookup failed keeps the answer it had for the same address.
    r.adopt(after, std::nullopt);
    CHECK(r.lookup(after, ss));
}
