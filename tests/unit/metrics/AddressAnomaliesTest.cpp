#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gateway/metrics/AddressAnomalies.h"
#include "gateway/metrics/AddressEventQueue.h"

using moat::metrics::AddressAnomalies;
using moat::metrics::AddressEvent;
using moat::metrics::AddressEventQueue;
using moat::metrics::RaisedAnomaly;
using namespace std::chrono_literals;

namespace {

moat::config::AnomalyConfig config(uint32_t authFailures, uint32_t storm) {
    moat::config::AnomalyConfig c;
    c.authFailures = authFailures;
    c.connectionStorm = storm;
    c.window = 60s;
    return c;
}

const AddressAnomalies::time_point t0{std::chrono::hours(1)};

AddressEvent connection(std::string ip, AddressAnomalies::time_point at,
                        std::string listener = "mqtts") {
    AddressEvent e;
    e.kind = AddressEvent::Kind::Connection;
    e.ip = std::move(ip);
    e.listener = std::move(listener);
    e.at = at;
    return e;
}

AddressEvent authFailure(std::string ip, std::string identity, AddressAnomalies::time_point at) {
    AddressEvent e;
    e.kind = AddressEvent::Kind::AuthFailure;
    e.ip = std::move(ip);
    e.identity = std::move(identity);
    e.at = at;
    return e;
}

}  // namespace

TEST_CASE("a storm spread over every worker's queue is seen as one") {
    // SO_REUSEPORT hands one address's connections to all workers: 4 workers x 3
    // connections, each worker below the threshold of 10, the process above it.
    AddressAnomalies a(config(5, 10));
    std::vector<AddressEventQueue> workers(4);
    for (int i = 0; i < 3; ++i)
        for (auto& q : workers) REQUIRE(q.push(connection("203.0.113.7", t0 + i * 1s)));
    std::vector<RaisedAnomaly> raised;
    for (auto& q : workers) CHECK(a.drain(q, raised) == 3);
    REQUIRE(raised.size() == 1);
    CHECK(raised[0].anomaly.kind == "connection_storm");
    CHECK(raised[0].anomaly.subject == "ip=203.0.113.7");
    CHECK(raised[0].anomaly.count == 10);
    CHECK(raised[0].listener == "mqtts");
    CHECK(raised[0].remote == "203.0.113.7");
    CHECK(raised[0].identity.empty());
    // Raised once per window, however many more arrive.
    for (auto& q : workers) q.push(connection("203.0.113.7", t0 + 5s));
    raised.clear();
    for (auto& q : workers) a.drain(q, raised);
    CHECK(raised.empty());
}

TEST_CASE("failed logins from one address on several workers add up") {
    AddressAnomalies a(config(3, 100));
    AddressEventQueue w0, w1, pool;
    w0.push(authFailure("198.51.100.1", "bob", t0));
    w1.push(authFailure("198.51.100.1", "", t0 + 1s));         // a certificate failure: no identity
    pool.push(authFailure("198.51.100.1", "carol", t0 + 2s));  // settled off the workers
    std::vector<RaisedAnomaly> raised;
    a.drain(w0, raised);
    a.drain(w1, raised);
    CHECK(raised.empty());
    a.drain(pool, raised);
    REQUIRE(raised.size() == 1);
    CHECK(raised[0].anomaly.kind == "auth_failures");
    CHECK(raised[0].anomaly.subject == "ip=198.51.100.1");
    CHECK(raised[0].remote == "198.51.100.1");
    CHECK(raised[0].identity == "carol");  // the event that crossed the threshold
    CHECK(raised[0].listener.empty());
}

TEST_CASE("a password spray on one identity from many addresses and workers") {
    AddressAnomalies a(config(3, 100));
    std::vector<AddressEventQueue> workers(3);
    for (int i = 0; i < 3; ++i)
        workers[i].push(authFailure("10.0.0." + std::to_string(i), "bob", t0 + i * 1s));
    std::vector<RaisedAnomaly> raised;
    for (auto& q : workers) a.drain(q, raised);
    REQUIRE(raised.size() == 1);
    CHECK(raised[0].anomaly.subject == "identity=bob");
}

TEST_CASE("events keep the time they happened at, not the time they were drained") {
    AddressAnomalies a(config(100, 3));
    AddressEventQueue q;
    // Three connections two windows apart: never a storm, however late they are drained.
    for (int i = 0; i < 3; ++i) q.push(connection("192.0.2.1", t0 + i * 130s));
    std::vector<RaisedAnomaly> raised;
    a.drain(q, raised);
    CHECK(raised.empty());
}

TEST_CASE("out-of-order events across queues never move the detector's clock back") {
    AddressAnomalies a(config(100, 3));
    AddressEventQueue late, early;
    late.push(connection("192.0.2.1", t0 + 10s));
    early.push(connection("192.0.2.1", t0 + 9s));  // drained after a later one
    early.push(connection("192.0.2.1", t0 + 9s));
    std::vector<RaisedAnomaly> raised;
    a.drain(late, raised);
    a.drain(early, raised);
    REQUIRE(raised.size() == 1);
    CHECK(raised[0].anomaly.count == 3);
}

TEST_CASE("the event queue is bounded: a full queue drops and counts, never grows") {
    AddressEventQueue q(4);
    for (int i = 0; i < 4; ++i) CHECK(q.push(connection("192.0.2.1", t0)));
    CHECK_FALSE(q.push(connection("192.0.2.2", t0)));
    CHECK_FALSE(q.push(connection("192.0.2.3", t0)));
    CHECK(q.size() == 4);
    CHECK(q.dropped() == 2);
    std::vector<std::string> seen;
    CHECK(q.drain([&](AddressEvent&& e) { seen.push_back(e.ip); }) == 4);
    CHECK(seen == std::vector<std::string>(4, "192.0.2.1"));
    CHECK(q.size() == 0);
    CHECK(q.push(connection("192.0.2.4", t0)));  // room again
    CHECK(q.drain([](AddressEvent&&) {}) == 1);
    CHECK(q.drain([](AddressEvent&&) {}) == 0);
}

TEST_CASE("events left in a queue are freed with it") {
    // Run under ASan: nothing leaks when a queue dies with events in it.
    AddressEventQueue q;
    for (int i = 0; i < 100; ++i) q.push(authFailure("192.0.2.1", std::string(100, 'x'), t0));
}

TEST_CASE("producers on many threads, one consumer draining meanwhile: each event once") {
    constexpr int kProducers = 4;
    constexpr int kEach = 20000;
    AddressEventQueue q(1 << 20);
    std::atomic<int> running{kProducers};
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
            for (int i = 0; i < kEach; ++i) {
                AddressEvent e = connection(std::to_string(p), t0);
                e.identity = std::to_string(i);  // sequence number
                q.push(std::move(e));
            }
            running.fetch_sub(1);
        });
    }
    std::vector<int> next(kProducers, 0);
    bool ordered = true;
    size_t received = 0;
    auto take = [&](AddressEvent&& e) {
        const int p = std::stoi(e.ip);
        if (std::stoi(e.identity) != next[p]) ordered = false;
        ++next[p];
        ++received;
    };
    while (running.load() > 0) q.drain(take);
    for (auto& t : producers) t.join();
    q.drain(take);
    CHECK(ordered);  // each producer's events in the order it pushed them
    CHECK(received == size_t(kProducers) * kEach);
    CHECK(q.dropped() == 0);
    CHECK(q.size() == 0);
}
