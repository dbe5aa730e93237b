// `latency`: an open-loop publisher sends at a fixed rate, each payload carrying its
// *scheduled* send time (so a stalled server is charged for the messages it delayed, not
// just the ones it let through: no coordinated omission); the subscriber records
// receive time - scheduled time for every message of the measured window.

#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "tests/bench/Commands.h"
#include "tests/bench/Mqtt.h"
#include "tests/bench/Stats.h"

namespace moat::bench {
namespace {

int64_t nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

struct SubState {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> received{0};  // in the measured window
    std::atomic<bool> failed{false};
    int64_t measureFrom = 0;  // scheduled-time bounds of the measured window
    int64_t measureTo = 0;
    std::vector<int64_t> samples;  // ns; written by the subscriber thread only
};

void subscriberLoop(mqtt::Client& c, SubState& s) {
    std::vector<uint8_t> acks;
    mqtt::Frame f;
    mqtt::PublishView pv;
    while (!s.stop.load(std::memory_order_relaxed)) {
        ssize_t r = c.reader.fill(*c.conn, 100);
        if (r < 0 || c.reader.malformed()) {
            if (!s.stop.load()) s.failed.store(true);
            return;
        }
        uint64_t n = 0;
        while (c.reader.next(f)) {
            if (f.type() != mqtt::kPublish || !mqtt::parsePublish(f, pv)) continue;
            int64_t now = nowNs();
            if (f.qos() > 0) mqtt::appendAck(acks, mqtt::kPuback, pv.packetId);
            if (pv.payloadLength < 8) continue;
            int64_t sent;
            std::memcpy(&sent, pv.payload, sizeof sent);
            if (sent < s.measureFrom || sent >= s.measureTo) continue;
            s.samples.push_back(now - sent);
            ++n;
        }
        if (n) s.received.fetch_add(n, std::memory_order_relaxed);
        if (!acks.empty()) {
            // One PUBACK per TLS record, all of this pass in one write (as throughput).
            if (!c.conn->writeRecords(acks.data(), acks.size(), 4)) {
                if (!s.stop.load()) s.failed.store(true);
                return;
            }
            acks.clear();
        }
    }
}

// Drains whatever the server sent the publisher (PUBACKs); false when the connection died.
bool drain(mqtt::Client& c) {
    mqtt::Frame f;
    for (;;) {
        ssize_t r = c.reader.fill(*c.conn, 0);
        if (r < 0 || c.reader.malformed()) return false;
        while (c.reader.next(f)) {
        }
        if (r == 0) return true;
    }
}

}  // namespace

int runLatency(int argc, char** argv, int first) {
    Args a(clientFlags({}), clientValued({"rate", "qos", "size", "seconds", "warmup"}),
           clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench latency: %s\n", a.error().c_str());
        return 2;
    }
    ClientSetup cs;
    if (!setupClient(a, cs)) return 2;
    double rate = a.number("rate", 5000);
    int qos = static_cast<int>(a.integer("qos", 1));
    size_t size = static_cast<size_t>(a.integer("size", 64));
    double seconds = a.number("seconds", 5);
    double warmup = a.number("warmup", 1);
    if (!a.ok() || rate <= 0 || rate > 1e6 || (qos != 0 && qos != 1) || size < 8 || size > 65536 ||
        seconds <= 0 || warmup < 0) {
        std::fprintf(stderr, "moat-bench latency: %s\n",
                     a.ok() ? "--rate 1..1e6, --qos 0|1, --size 8..65536, --seconds > 0"
                            : a.error().c_str());
        return 2;
    }
    // Sleep precisely: the default 50 us timer slack would be jitter charged to the server.
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    std::string error;
    std::string tag = std::to_string(::getpid());
    auto sub = mqtt::connectClient(cs.ep, "mb-lsub-" + tag, 5000, error);
    if (!sub || !mqtt::subscribeAndWait(*sub, cs.topic, static_cast<uint8_t>(qos), 5000, error)) {
        std::fprintf(stderr, "moat-bench latency: subscriber: %s\n", error.c_str());
        return 1;
    }
    auto pub = mqtt::connectClient(cs.ep, "mb-lpub-" + tag, 5000, error);
    if (!pub) {
        std::fprintf(stderr, "moat-bench latency: publisher: %s\n", error.c_str());
        return 1;
    }

    const int64_t interval = static_cast<int64_t>(1e9 / rate);
    const uint64_t total = static_cast<uint64_t>(rate * (warmup + seconds));
    const int64_t t0 = nowNs() + 20'000'000;
    SubState s;
    s.measureFrom = t0 + static_cast<int64_t>(warmup * 1e9);
    s.measureTo = t0 + static_cast<int64_t>((warmup + seconds) * 1e9);
    s.samples.reserve(static_cast<size_t>(rate * seconds * 1.05) + 1024);
    std::thread subThread(subscriberLoop, std::ref(*sub), std::ref(s));

    std::vector<uint8_t> pkt;
    size_t payloadAt = mqtt::appendPublish(pkt, cs.topic, static_cast<uint8_t>(qos), 1, size);
    uint16_t nextId = 1;
    uint64_t inWindow = 0;
    int64_t maxLate = 0;
    bool pubOk = true;
    for (uint64_t i = 0; i < total && pubOk && !s.failed.load(); ++i) {
        const int64_t sched = t0 + static_cast<int64_t>(i) * interval;
        for (;;) {
            int64_t left = sched - nowNs();
            if (left <= 0) break;
            if (left > 30'000) {
                // Sleep in poll (waking early for PUBACKs), then spin the last 20 us.
                timespec ts{0, left - 20'000};
                pollfd p{pub->conn->fd(), POLLIN, 0};
                if (::ppoll(&p, 1, &ts, nullptr) > 0 && !drain(*pub)) pubOk = false;
                if (!pubOk) break;
            }
        }
        maxLate = std::max(maxLate, nowNs() - sched);
        std::memcpy(pkt.data() + payloadAt, &sched, sizeof sched);
        if (qos) {
            pkt[payloadAt - 2] = static_cast<uint8_t>(nextId >> 8);
            pkt[payloadAt - 1] = static_cast<uint8_t>(nextId);
            if (++nextId == 0) nextId = 1;
        }
        if (pubOk && !pub->conn->writeAll(pkt.data(), pkt.size())) pubOk = false;
        if (sched >= s.measureFrom && sched < s.measureTo) ++inWindow;
    }
    // Let the last messages arrive (bounded), then stop the subscriber.
    auto waitEnd = Clock::now() + std::chrono::seconds(2);
    while (s.received.load() < inWindow && Clock::now() < waitEnd && !s.failed.load()) {
        drain(*pub);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    s.stop.store(true);
    ::shutdown(sub->conn->fd(), SHUT_RDWR);
    subThread.join();

    uint64_t got = s.samples.size();
    auto us = [&](double p) { return percentile(s.samples, p) / 1000.0; };
    double p50 = us(50), p90 = us(90), p99 = us(99), p999 = us(99.9), pmax = us(100);
    std::printf("latency rate=%.0f/s qos=%d size=%zu tls=%s\n", rate, qos, size,
                cs.ep.tls ? "yes" : "no");
    std::printf(
        "  %llu/%llu messages  p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  "
        "max %.1f us  (publisher max lateness %.1f us)\n",
        static_cast<unsigned long long>(got), static_cast<unsigned long long>(inWindow), p50, p90,
        p99, p999, pmax, static_cast<double>(maxLate) / 1000.0);
    bool ok = pubOk && !s.failed.load() && got > 0;
    Json j;
    j.add("cmd", "latency")
        .add("rate", rate)
        .add("qos", qos)
        .add("size", static_cast<int64_t>(size));
    j.add("sent", static_cast<int64_t>(inWindow)).add("received", static_cast<int64_t>(got));
    j.add("p50_us", p50).add("p90_us", p90).add("p99_us", p99).add("p999_us", p999);
    j.add("max_us", pmax).add("publisher_max_late_us", static_cast<double>(maxLate) / 1000.0);
    j.add("ok", ok);
    printResult(j.str());
    return ok ? 0 : 1;
}

}  // namespace moat::bench
