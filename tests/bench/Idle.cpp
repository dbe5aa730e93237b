// `idle`: opens N sessions (TLS + CONNECT/CONNACK) that then stay silent, and reports the
// growth of the watched server processes' resident memory per connection. A few warm-up
// sessions are opened first so one-time allocations (TLS context, broker structures) are not
// charged to the measured ones. --ready-file / --hold-seconds keep the sessions open for an
// outside observer.

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/bench/Commands.h"
#include "tests/bench/Mqtt.h"

namespace moat::bench {
namespace {

// Opens `n` sessions with `concurrency` threads into `out`. False (error set) on any failure.
bool openSessions(const ClientSetup& cs, int64_t n, int concurrency, const std::string& prefix,
                  std::vector<std::unique_ptr<mqtt::Client>>& out, std::string& error) {
    std::atomic<int64_t> next{0};
    std::mutex mu;
    bool failed = false;
    auto worker = [&] {
        int64_t i;
        while ((i = next.fetch_add(1)) < n) {
            std::string e;
            auto c = mqtt::connectClient(cs.ep, prefix + std::to_string(i), 10000, e);
            std::lock_guard<std::mutex> lock(mu);
            if (!c) {
                if (!failed) error = "session " + std::to_string(i) + ": " + e;
                failed = true;
                next.store(n);
                return;
            }
            out.push_back(std::move(c));
        }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < concurrency; ++i) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    return !failed;
}

}  // namespace

int runIdle(int argc, char** argv, int first) {
    Args a(
        clientFlags({}),
        clientValued({"count", "concurrency", "warm", "settle-ms", "hold-seconds", "ready-file"}),
        clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench idle: %s\n", a.error().c_str());
        return 2;
    }
    ClientSetup cs;
    if (!setupClient(a, cs)) return 2;
    int64_t count = a.integer("count", 1000);
    int concurrency = static_cast<int>(a.integer("concurrency", 4));
    int64_t warm = a.integer("warm", 20);
    int settleMs = static_cast<int>(a.integer("settle-ms", 1000));
    double hold = a.number("hold-seconds", 0);
    std::string readyFile = a.str("ready-file");
    if (!a.ok() || count < 1 || concurrency < 1 || concurrency > 256 || warm < 0 || settleMs < 0 ||
        hold < 0) {
        std::fprintf(stderr, "moat-bench idle: %s\n",
                     a.ok() ? "--count >= 1, --concurrency 1..256" : a.error().c_str());
        return 2;
    }
    uint64_t limit = raiseFileLimit();
    if (limit < static_cast<uint64_t>(count + warm) + 64) {
        std::fprintf(stderr, "moat-bench idle: open-file limit %llu is too low for %lld sessions\n",
                     static_cast<unsigned long long>(limit), static_cast<long long>(count + warm));
        return 1;
    }

    std::string tag = std::to_string(::getpid());
    std::vector<std::unique_ptr<mqtt::Client>> warmSessions, sessions;
    sessions.reserve(static_cast<size_t>(count));
    std::string error;
    if (!openSessions(cs, warm, concurrency, "mb-warm-" + tag + "-", warmSessions, error)) {
        std::fprintf(stderr, "moat-bench idle: warm-up: %s\n", error.c_str());
        return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(settleMs));
    std::vector<int64_t> before;
    for (const auto& w : cs.watched) before.push_back(rssKiB(w.pid));

    auto t0 = Clock::now();
    bool opened = openSessions(cs, count, concurrency, "mb-idle-" + tag + "-", sessions, error);
    double openSeconds = secondsSince(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(settleMs));
    std::vector<int64_t> after;
    for (const auto& w : cs.watched) after.push_back(rssKiB(w.pid));

    std::printf("idle count=%lld tls=%s: %zu sessions open in %.2f s\n",
                static_cast<long long>(count), cs.ep.tls ? "yes" : "no", sessions.size(),
                openSeconds);
    Json perConn;
    double total = 0;
    for (size_t i = 0; i < cs.watched.size(); ++i) {
        double kib = static_cast<double>(after[i] - before[i]) / static_cast<double>(count);
        total += kib;
        std::printf("  rss %-10s %8.2f KiB/connection  (%lld -> %lld KiB)\n",
                    cs.watched[i].label.c_str(), kib, static_cast<long long>(before[i]),
                    static_cast<long long>(after[i]));
        perConn.add(cs.watched[i].label, kib);
    }
    if (!cs.watched.empty()) {
        std::printf("  rss %-10s %8.2f KiB/connection\n", "total", total);
        perConn.add("total", total);
    }
    if (!opened) std::fprintf(stderr, "moat-bench idle: %s\n", error.c_str());

    if (opened && !readyFile.empty()) {
        // Hold until the observer deletes the file (or the hold time runs out).
        std::ofstream(readyFile) << ::getpid() << "\n";
        auto end = Clock::now() + std::chrono::duration<double>(hold > 0 ? hold : 600);
        struct stat st;
        while (Clock::now() < end && ::stat(readyFile.c_str(), &st) == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    } else if (opened && hold > 0) {
        sleepFor(hold);
    }

    Json j;
    j.add("cmd", "idle").add("count", count).add("opened", static_cast<int64_t>(sessions.size()));
    j.add("open_seconds", openSeconds);
    if (!cs.watched.empty()) j.add("rss_kib_per_conn", perConn);
    if (!opened) j.add("error", error);
    j.add("ok", opened);
    printResult(j.str());
    return opened ? 0 : 1;
}

}  // namespace moat::bench
