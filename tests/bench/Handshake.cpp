// `handshake`: C threads each loop TCP connect -> TLS handshake -> CONNECT/CONNACK ->
// DISCONNECT -> close until N sessions are done. Reports sessions/s, client-side connect
// latency and, with --pid, server CPU per session. Handshakes are full unless --resume: then
// each thread offers the session (ticket) its previous connection received, as a device
// reconnecting does, and the report counts how many the server resumed. --fleet FILE (see
// gen_fleet.py) gives connection i the device (--fleet-offset + i) of the fleet instead of
// --cert: a distinct certificate and key per connection, as a fleet of devices connecting
// once each; without it every connection presents --cert, as one known device reconnecting
// without a session ticket.

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "tests/bench/Commands.h"
#include "tests/bench/Mqtt.h"
#include "tests/bench/Stats.h"

namespace moat::bench {

int runHandshake(int argc, char** argv, int first) {
    Args a(clientFlags({"resume"}),
           clientValued({"count", "concurrency", "settle-ms", "fleet", "fleet-offset"}),
           clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench handshake: %s\n", a.error().c_str());
        return 2;
    }
    ClientSetup cs;
    if (!setupClient(a, cs)) return 2;
    int64_t count = a.integer("count", 1000);
    int concurrency = static_cast<int>(a.integer("concurrency", 4));
    int settleMs = static_cast<int>(a.integer("settle-ms", 300));
    const bool resume = a.flag("resume");
    const int64_t fleetOffset = a.integer("fleet-offset", 0);
    if (!a.ok() || count < 1 || concurrency < 1 || concurrency > 1024 || settleMs < 0 ||
        fleetOffset < 0) {
        std::fprintf(stderr, "moat-bench handshake: %s\n",
                     a.ok() ? "--count >= 1, --concurrency 1..1024, --fleet-offset >= 0"
                            : a.error().c_str());
        return 2;
    }
    Fleet fleet;
    if (a.has("fleet")) {
        std::string error;
        if (!cs.ep.tls || !fleet.load(a.str("fleet"), error)) {
            std::fprintf(stderr, "moat-bench handshake: %s\n",
                         cs.ep.tls ? error.c_str() : "--fleet needs --tls");
            return 2;
        }
        // Each device once: a repeated one would be a known device, not a new one.
        if (static_cast<size_t>(fleetOffset + count) > fleet.size()) {
            std::fprintf(stderr,
                         "moat-bench handshake: --fleet-offset + --count (%lld) exceeds the "
                         "fleet (%zu devices)\n",
                         static_cast<long long>(fleetOffset + count), fleet.size());
            return 2;
        }
    }

    std::atomic<int64_t> next{0};
    std::atomic<int64_t> ok{0};
    std::atomic<int64_t> failed{0};
    std::atomic<int64_t> resumed{0};
    std::mutex mu;
    std::string firstError;
    std::vector<int64_t> latencies;  // us, client-side connect -> CONNACK
    latencies.reserve(static_cast<size_t>(count));
    std::string tag = std::to_string(::getpid());
    const auto bye = mqtt::disconnect();

    auto worker = [&] {
        std::vector<int64_t> mine;
        Endpoint ep = cs.ep;
        std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session(nullptr,
                                                                          SSL_SESSION_free);
        int64_t i;
        while ((i = next.fetch_add(1)) < count) {
            std::string error;
            ep.resume = session.get();
            if (fleet.size()) {
                const Device& d = fleet[static_cast<size_t>(fleetOffset + i)];
                ep.cert = d.cert;
                ep.key = d.key;
            }
            auto t = Clock::now();
            auto c = mqtt::connectClient(ep, "mb-hs-" + tag + "-" + std::to_string(i), 5000, error);
            if (!c) {
                failed.fetch_add(1);
                std::lock_guard<std::mutex> lock(mu);
                if (firstError.empty()) firstError = error;
                continue;
            }
            mine.push_back(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
            if (c->conn->resumed()) resumed.fetch_add(1);
            // The CONNACK came after the TLS 1.3 ticket, so the session is complete by now.
            if (resume) session.reset(c->conn->resumableSession());
            c->conn->writeAll(bye.data(), bye.size());
            c->conn->close();
            ok.fetch_add(1);
        }
        std::lock_guard<std::mutex> lock(mu);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
    };

    CpuWindow cpu(cs.watched);
    cpu.start();
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < concurrency; ++i) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    double elapsed = secondsSince(t0);
    // The servers finish tearing down the last sessions after the clients are gone.
    std::this_thread::sleep_for(std::chrono::milliseconds(settleMs));
    cpu.stop();

    double rate = static_cast<double>(ok.load()) / elapsed;
    double p50 = percentile(latencies, 50), p99 = percentile(latencies, 99);
    std::printf("handshake count=%lld concurrency=%d tls=%s%s%s\n", static_cast<long long>(count),
                concurrency, cs.ep.tls ? "yes" : "no", resume ? " resume" : "",
                fleet.size() ? " distinct-devices" : "");
    std::printf(
        "  %lld ok, %lld failed, %.0f sessions/s, connect->CONNACK p50 %.0f us p99 %.0f us\n",
        static_cast<long long>(ok.load()), static_cast<long long>(failed.load()), rate, p50, p99);
    if (resume) std::printf("  %lld resumed\n", static_cast<long long>(resumed.load()));
    if (!firstError.empty()) std::printf("  first error: %s\n", firstError.c_str());
    Json cpuJson = cpu.perUnit(static_cast<double>(ok.load()), "handshake");
    bool good = failed.load() == 0 && ok.load() == count;
    Json j;
    j.add("cmd", "handshake").add("count", count).add("concurrency", concurrency);
    j.add("ok_count", ok.load()).add("failed", failed.load()).add("per_s", rate);
    j.add("resume", resume).add("resumed", resumed.load());
    j.add("distinct_devices", fleet.size() != 0);
    j.add("connect_p50_us", p50).add("connect_p99_us", p99);
    if (!cpu.empty()) j.add("cpu_us_per_handshake", cpuJson);
    if (!firstError.empty()) j.add("error", firstError);
    j.add("ok", good);
    printResult(j.str());
    return good ? 0 : 1;
}

}  // namespace moat::bench
