// `throughput`: publishers -> gateway/broker -> one subscriber (or a sink), counted over a
// fixed window after a warm-up. --batch K puts K PUBLISH packets in one write (one TLS record
// up to 16 KiB); QoS 1 publishers keep a window of un-acknowledged packets. --pairs N runs N
// publishers and N subscribers 1:1 (publisher i -> TOPIC/i -> subscriber i), each client on
// its own thread: the shape of issue 26's table (4 -> 4), which loads the server with several
// connections the way a fleet does rather than one fan-in.

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/bench/Commands.h"
#include "tests/bench/Mqtt.h"
#include "tests/bench/Sink.h"

namespace moat::bench {
namespace {

struct Shared {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> received{0};
    std::atomic<uint64_t> sent{0};
    std::atomic<uint64_t> acked{0};
    std::mutex mu;
    std::string error;
    void fail(const std::string& e) {
        if (stop.load()) return;  // errors after the window closed are the shutdown itself
        std::lock_guard<std::mutex> lock(mu);
        if (error.empty()) error = e;
    }
};

struct Options {
    int qos = 0;
    size_t size = 64;
    size_t batch = 1;
    size_t window = 64;
    int publishers = 1;
};

void subscriberLoop(mqtt::Client& c, Shared& s) {
    std::vector<uint8_t> acks;
    mqtt::Frame f;
    mqtt::PublishView pv;
    while (!s.stop.load(std::memory_order_relaxed)) {
        ssize_t r = c.reader.fill(*c.conn, 100);
        if (r < 0 || c.reader.malformed()) {
            s.fail("subscriber: connection closed by the server");
            return;
        }
        uint64_t n = 0;
        while (c.reader.next(f)) {
            if (f.type() != mqtt::kPublish) continue;
            ++n;
            if (f.qos() > 0 && mqtt::parsePublish(f, pv)) {
                mqtt::appendAck(acks, f.qos() == 1 ? mqtt::kPuback : mqtt::kPubrec, pv.packetId);
            }
        }
        if (n) s.received.fetch_add(n, std::memory_order_relaxed);
        if (!acks.empty()) {
            // One PUBACK / PUBREC (4 bytes) per TLS record, all of this pass in one write.
            if (!c.conn->writeRecords(acks.data(), acks.size(), 4)) {
                s.fail("subscriber: write failed");
                return;
            }
            acks.clear();
        }
    }
}

void publisherQos0(mqtt::Client& c, const Options& o, const std::string& topic, Shared& s) {
    std::vector<uint8_t> batch;
    for (size_t i = 0; i < o.batch; ++i) mqtt::appendPublish(batch, topic, 0, 0, o.size);
    while (!s.stop.load(std::memory_order_relaxed)) {
        if (!c.conn->writeAll(batch.data(), batch.size())) {
            s.fail("publisher: write failed (connection closed by the server?)");
            return;
        }
        s.sent.fetch_add(o.batch, std::memory_order_relaxed);
    }
}

void publisherQos1(mqtt::Client& c, const Options& o, const std::string& topic, Shared& s) {
    std::vector<uint8_t> batch;
    std::vector<size_t> idAt;  // offset of each packet id in `batch`
    size_t packetLen = 0;
    for (size_t i = 0; i < o.batch; ++i) {
        size_t before = batch.size();
        idAt.push_back(mqtt::appendPublish(batch, topic, 1, 1, o.size) - 2);
        packetLen = batch.size() - before;
    }
    uint16_t nextId = 1;
    size_t inflight = 0;
    mqtt::Frame f;
    while (!s.stop.load(std::memory_order_relaxed)) {
        size_t room = o.window - inflight;
        if (room > 0) {
            size_t n = std::min(o.batch, room);
            for (size_t i = 0; i < n; ++i) {
                batch[idAt[i]] = static_cast<uint8_t>(nextId >> 8);
                batch[idAt[i] + 1] = static_cast<uint8_t>(nextId);
                if (++nextId == 0) nextId = 1;
            }
            if (!c.conn->writeAll(batch.data(), n * packetLen)) {
                s.fail("publisher: write failed (connection closed by the server?)");
                return;
            }
            inflight += n;
            s.sent.fetch_add(n, std::memory_order_relaxed);
        }
        ssize_t r = c.reader.fill(*c.conn, inflight >= o.window ? 100 : 0);
        if (r < 0 || c.reader.malformed()) {
            s.fail("publisher: connection closed by the server");
            return;
        }
        uint64_t acks = 0;
        while (c.reader.next(f)) {
            if (f.type() == mqtt::kPuback) ++acks;
        }
        inflight -= std::min<size_t>(inflight, acks);
        if (acks) s.acked.fetch_add(acks, std::memory_order_relaxed);
    }
}

}  // namespace

int runThroughput(int argc, char** argv, int first) {
    Args a(clientFlags({"no-subscriber"}),
           clientValued({"qos", "size", "batch", "window", "seconds", "warmup", "publishers",
                         "count-at", "pairs"}),
           clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench throughput: %s\n", a.error().c_str());
        return 2;
    }
    ClientSetup cs;
    if (!setupClient(a, cs)) return 2;
    Options o;
    o.qos = static_cast<int>(a.integer("qos", 0));
    o.size = static_cast<size_t>(a.integer("size", 64));
    o.batch = static_cast<size_t>(a.integer("batch", 1));
    o.window = static_cast<size_t>(a.integer("window", 64));
    o.publishers = static_cast<int>(a.integer("publishers", 1));
    const int pairs = static_cast<int>(a.integer("pairs", 0));
    double seconds = a.number("seconds", 5);
    double warmup = a.number("warmup", 1);
    bool noSubscriber = a.flag("no-subscriber");
    std::string countHost;
    uint16_t countPort = 0;
    if (a.has("count-at") && !parseHostPort(a.str("count-at"), countHost, countPort)) {
        std::fprintf(stderr, "moat-bench throughput: --count-at HOST:PORT\n");
        return 2;
    }
    if (pairs != 0 &&
        (pairs < 1 || pairs > 128 || a.has("publishers") || noSubscriber || a.has("count-at"))) {
        std::fprintf(stderr,
                     "moat-bench throughput: --pairs 1..128, without --publishers, "
                     "--no-subscriber or --count-at\n");
        return 2;
    }
    if (pairs) o.publishers = pairs;
    if (!a.ok() || (o.qos != 0 && o.qos != 1) || o.batch < 1 || o.batch > 4096 || o.window < 1 ||
        o.window > 65535 || o.publishers < 1 || o.publishers > 256 || o.size > 256 * 1024 ||
        seconds <= 0 || warmup < 0) {
        std::fprintf(stderr, "moat-bench throughput: %s\n",
                     a.ok() ? "--qos 0|1, --batch 1..4096, --window 1..65535, "
                              "--publishers 1..256, --size <= 256KiB, --seconds > 0"
                            : a.error().c_str());
        return 2;
    }

    Shared s;
    std::string error;
    std::vector<std::unique_ptr<mqtt::Client>> subs;
    std::string tag = std::to_string(::getpid());
    // Publisher i's topic: TOPIC, or TOPIC/i with --pairs.
    auto topicOf = [&](int i) { return pairs ? cs.topic + "/" + std::to_string(i) : cs.topic; };
    for (int i = 0; i < (noSubscriber ? 0 : pairs ? pairs : 1); ++i) {
        auto sub =
            mqtt::connectClient(cs.ep, "mb-sub-" + tag + "-" + std::to_string(i), 5000, error);
        if (!sub ||
            !mqtt::subscribeAndWait(*sub, topicOf(i), static_cast<uint8_t>(o.qos), 5000, error)) {
            std::fprintf(stderr, "moat-bench throughput: subscriber: %s\n", error.c_str());
            return 1;
        }
        subs.push_back(std::move(sub));
    }
    std::vector<std::string> topics;
    for (int i = 0; i < o.publishers; ++i) topics.push_back(topicOf(i));
    std::vector<std::unique_ptr<mqtt::Client>> pubs;
    for (int i = 0; i < o.publishers; ++i) {
        auto c = mqtt::connectClient(cs.ep, "mb-pub-" + tag + "-" + std::to_string(i), 5000, error);
        if (!c) {
            std::fprintf(stderr, "moat-bench throughput: publisher: %s\n", error.c_str());
            return 1;
        }
        pubs.push_back(std::move(c));
    }

    auto count = [&]() -> int64_t {
        if (countPort) return querySinkCount(countHost, countPort);
        if (!subs.empty()) return static_cast<int64_t>(s.received.load());
        return static_cast<int64_t>(o.qos == 1 ? s.acked.load() : s.sent.load());
    };
    std::vector<std::thread> threads;
    for (auto& sub : subs) threads.emplace_back(subscriberLoop, std::ref(*sub), std::ref(s));
    for (size_t i = 0; i < pubs.size(); ++i) {
        if (o.qos == 0) {
            threads.emplace_back(publisherQos0, std::ref(*pubs[i]), std::cref(o),
                                 std::cref(topics[i]), std::ref(s));
        } else {
            threads.emplace_back(publisherQos1, std::ref(*pubs[i]), std::cref(o),
                                 std::cref(topics[i]), std::ref(s));
        }
    }

    CpuWindow cpu(cs.watched);
    sleepFor(warmup);
    int64_t c0 = count();
    uint64_t sent0 = s.sent.load();
    cpu.start();
    auto t0 = Clock::now();
    sleepFor(seconds);
    int64_t c1 = count();
    uint64_t sent1 = s.sent.load();
    cpu.stop();
    double elapsed = secondsSince(t0);

    s.stop.store(true);
    // Unblock threads waiting on a peer that stopped reading; the window is already measured.
    for (auto& sub : subs) ::shutdown(sub->conn->fd(), SHUT_RDWR);
    for (auto& p : pubs) ::shutdown(p->conn->fd(), SHUT_RDWR);
    for (auto& t : threads) t.join();

    if (c0 < 0 || c1 < 0) {
        std::fprintf(stderr, "moat-bench throughput: cannot read the sink's count\n");
        return 1;
    }
    double msgs = static_cast<double>(c1 - c0);
    double rate = msgs / elapsed;
    double sentRate = static_cast<double>(sent1 - sent0) / elapsed;
    const char* where = countPort       ? "at the sink"
                        : !subs.empty() ? "by the subscribers"
                                        : "by the publisher";
    std::printf("throughput qos=%d size=%zu batch=%zu publishers=%d subscribers=%zu tls=%s\n",
                o.qos, o.size, o.batch, o.publishers, subs.size(), cs.ep.tls ? "yes" : "no");
    std::printf("  received %.0f msg/s %s (%.1f MB/s payload), published %.0f msg/s\n", rate, where,
                rate * static_cast<double>(o.size) / 1e6, sentRate);
    Json cpuJson = cpu.perUnit(msgs, "msg");
    if (!s.error.empty()) std::fprintf(stderr, "moat-bench throughput: %s\n", s.error.c_str());

    Json j;
    j.add("cmd", "throughput").add("qos", o.qos).add("size", static_cast<int64_t>(o.size));
    j.add("batch", static_cast<int64_t>(o.batch)).add("publishers", o.publishers);
    j.add("subscribers", static_cast<int64_t>(subs.size()));
    j.add("seconds", elapsed).add("messages", static_cast<int64_t>(msgs));
    j.add("msg_per_s", rate).add("sent_per_s", sentRate);
    if (!cpu.empty()) j.add("cpu_us_per_msg", cpuJson);
    j.add("ok", s.error.empty() && msgs > 0);
    if (!s.error.empty()) j.add("error", s.error);
    printResult(j.str());
    return s.error.empty() && msgs > 0 ? 0 : 1;
}

}  // namespace moat::bench
