#include "tests/bench/Sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/bench/Commands.h"
#include "tests/bench/Mqtt.h"

namespace moat::bench {

struct SinkServer::State {
    int listenFd = -1;
    uint16_t port = 0;
    bool deliver = false;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> publishes{0};
    std::atomic<uint64_t> connections{0};
    std::atomic<int> active{0};  // handler threads still running (accept thread included)
    std::mutex mu;
    std::set<int> fds;  // open connections, shut down by stop()
    std::map<Conn*, std::shared_ptr<std::mutex>> subscribers;  // deliver mode
};

namespace {

using State = SinkServer::State;

// Skips a v5 property block (varint length + bytes); false when truncated.
bool skipProperties(const uint8_t*& p, const uint8_t* end) {
    uint32_t len = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        if (p >= end) return false;
        uint8_t b = *p++;
        len |= static_cast<uint32_t>(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (len > static_cast<uint32_t>(end - p)) return false;
    p += len;
    return true;
}

// Answers one packet into `out`. Returns false when the connection should close.
bool answer(const mqtt::Frame& f, bool& v5, std::vector<uint8_t>& out, uint64_t& publishes,
            bool& subscribed) {
    const uint8_t* p = f.body;
    const uint8_t* end = f.body + f.length;
    switch (f.type()) {
        case mqtt::kConnect: {
            if (f.length >= 7) v5 = f.body[2 + mqtt::readU16(f.body)] == 5;
            if (v5)
                out.insert(out.end(), {0x20, 3, 0, 0, 0});
            else
                out.insert(out.end(), {0x20, 2, 0, 0});
            return true;
        }
        case mqtt::kPublish: {
            ++publishes;
            if (f.qos() == 0) return true;
            mqtt::PublishView pv;
            if (!mqtt::parsePublish(f, pv)) return false;
            mqtt::appendAck(out, f.qos() == 1 ? mqtt::kPuback : mqtt::kPubrec, pv.packetId);
            return true;
        }
        case mqtt::kPubrel:
            if (f.length < 2) return false;
            mqtt::appendAck(out, mqtt::kPubcomp, mqtt::readU16(p));
            return true;
        case mqtt::kSubscribe:
        case mqtt::kUnsubscribe: {
            if (f.length < 2) return false;
            uint16_t id = mqtt::readU16(p);
            p += 2;
            if (v5 && !skipProperties(p, end)) return false;
            std::vector<uint8_t> codes;
            while (end - p >= 2) {
                size_t len = mqtt::readU16(p);
                p += 2 + len;
                if (p > end) return false;
                if (f.type() == mqtt::kSubscribe) {
                    if (p >= end) return false;
                    codes.push_back(*p++ & 3);
                } else {
                    codes.push_back(0);
                }
            }
            bool sub = f.type() == mqtt::kSubscribe;
            if (sub) subscribed = true;
            if (!sub && !v5) {
                mqtt::appendAck(out, mqtt::kUnsuback, id);
                return true;
            }
            out.push_back(sub ? 0x90 : 0xb0);
            mqtt::appendRemainingLength(out,
                                        static_cast<uint32_t>(2 + (v5 ? 1 : 0) + codes.size()));
            out.push_back(static_cast<uint8_t>(id >> 8));
            out.push_back(static_cast<uint8_t>(id));
            if (v5) out.push_back(0);
            out.insert(out.end(), codes.begin(), codes.end());
            return true;
        }
        case mqtt::kPingreq:
            out.insert(out.end(), {0xd0, 0});
            return true;
        case mqtt::kDisconnect:
            return false;
        default:
            return true;  // PUBACK / PUBREC / PUBCOMP from a subscriber: nothing to answer
    }
}

void deliverCopies(State& s, Conn* self, const mqtt::Frame& f) {
    std::vector<uint8_t> pkt{f.header};
    mqtt::appendRemainingLength(pkt, f.length);
    pkt.insert(pkt.end(), f.body, f.body + f.length);
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [conn, writeMu] : s.subscribers) {
        if (conn == self) continue;
        std::lock_guard<std::mutex> w(*writeMu);
        conn->writeAll(pkt.data(), pkt.size());
    }
}

void serve(std::shared_ptr<State> s, int fd) {
    auto conn = Conn::adopt(fd);
    auto writeMu = std::make_shared<std::mutex>();
    mqtt::FrameReader reader;
    std::vector<uint8_t> out;
    bool v5 = false, first = true, subscribed = false, registered = false;
    mqtt::Frame f;
    while (!s->stop.load(std::memory_order_relaxed)) {
        ssize_t r = reader.fill(*conn, 200);
        if (r < 0 || reader.malformed()) break;
        if (r == 0) continue;
        if (first) {
            std::string_view head = reader.pending();
            if (head.size() < 5 && std::string_view("STATS").substr(0, head.size()) == head) {
                continue;  // a STATS probe split across reads
            }
            first = false;
            if (head.substr(0, 5) == "STATS") {
                std::string line = std::to_string(s->publishes.load()) + "\n";
                conn->writeAll(line.data(), line.size());
                break;
            }
        }
        uint64_t publishes = 0;
        bool open = true;
        while (open && reader.next(f)) {
            open = answer(f, v5, out, publishes, subscribed);
            if (s->deliver && f.type() == mqtt::kPublish) deliverCopies(*s, conn.get(), f);
        }
        if (publishes) s->publishes.fetch_add(publishes, std::memory_order_relaxed);
        if (!out.empty()) {
            std::lock_guard<std::mutex> w(*writeMu);
            if (!conn->writeAll(out.data(), out.size())) break;
            out.clear();
        }
        if (s->deliver && subscribed && !registered) {
            std::lock_guard<std::mutex> lock(s->mu);
            s->subscribers[conn.get()] = writeMu;
            registered = true;
        }
        if (!open) break;
    }
    {
        std::lock_guard<std::mutex> lock(s->mu);
        s->subscribers.erase(conn.get());
        s->fds.erase(conn->fd());
    }
    conn.reset();
    s->active.fetch_sub(1);
}

void acceptLoop(std::shared_ptr<State> s) {
    while (!s->stop.load()) {
        pollfd p{s->listenFd, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        int fd = ::accept4(s->listenFd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            continue;
        }
        {
            std::lock_guard<std::mutex> lock(s->mu);
            s->fds.insert(fd);
        }
        s->connections.fetch_add(1);
        s->active.fetch_add(1);
        std::thread(serve, s, fd).detach();
    }
    s->active.fetch_sub(1);
}

volatile sig_atomic_t gStop = 0;
void onSignal(int) {
    gStop = 1;
}

}  // namespace

SinkServer::SinkServer() : state_(std::make_shared<State>()) {}
SinkServer::~SinkServer() {
    stop();
}

bool SinkServer::start(const std::string& host, uint16_t port, bool deliver, std::string& error) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
        error = "sink: --host must be an IPv4 address";
        return false;
    }
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 4096) != 0) {
        error = std::string("sink: bind/listen: ") + std::strerror(errno);
        ::close(fd);
        return false;
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    state_->listenFd = fd;
    state_->port = ntohs(addr.sin_port);
    state_->deliver = deliver;
    state_->active.fetch_add(1);
    std::thread(acceptLoop, state_).detach();
    return true;
}

uint16_t SinkServer::port() const {
    return state_->port;
}
uint64_t SinkServer::publishes() const {
    return state_->publishes.load();
}
uint64_t SinkServer::connections() const {
    return state_->connections.load();
}

void SinkServer::stop() {
    if (state_->listenFd < 0 || state_->stop.exchange(true)) return;
    {
        std::lock_guard<std::mutex> lock(state_->mu);
        for (int fd : state_->fds) ::shutdown(fd, SHUT_RDWR);
    }
    // Handlers notice within one poll period; bounded so a wedged peer cannot hang us.
    auto end = Clock::now() + std::chrono::seconds(2);
    while (state_->active.load() > 0 && Clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (state_->active.load() == 0) ::close(state_->listenFd);
}

int64_t querySinkCount(const std::string& host, uint16_t port) {
    std::string error;
    auto c = Conn::open(Endpoint{host, port, nullptr, {}}, 2000, error);
    if (!c || !c->writeAll("STATS\n", 6)) return -1;
    std::string line;
    char buf[64];
    for (;;) {
        ssize_t r = c->read(buf, sizeof buf, 2000);
        if (r <= 0) break;
        line.append(buf, static_cast<size_t>(r));
    }
    if (line.empty() || line.back() != '\n') return -1;
    return std::strtoll(line.c_str(), nullptr, 10);
}

int runSink(int argc, char** argv, int first) {
    Args a({"deliver"}, {"host", "port", "seconds"});
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench sink: %s\n", a.error().c_str());
        return 2;
    }
    std::string host = a.str("host", "127.0.0.1");
    int64_t port = a.integer("port", 0);
    double seconds = a.number("seconds", 0);
    if (!a.ok() || port < 0 || port > 65535 || seconds < 0) {
        std::fprintf(stderr, "moat-bench sink: %s\n",
                     a.ok() ? "--port 0..65535 (0: any free port)" : a.error().c_str());
        return 2;
    }
    raiseFileLimit();
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    SinkServer sink;
    std::string error;
    if (!sink.start(host, static_cast<uint16_t>(port), a.flag("deliver"), error)) {
        std::fprintf(stderr, "moat-bench %s\n", error.c_str());
        return 1;
    }
    std::printf("sink listening on %s:%u\n", host.c_str(), sink.port());
    std::fflush(stdout);
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (!gStop && (seconds == 0 || Clock::now() < end)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    sink.stop();
    std::printf("sink: %llu publishes over %llu connections\n",
                static_cast<unsigned long long>(sink.publishes()),
                static_cast<unsigned long long>(sink.connections()));
    Json j;
    j.add("cmd", "sink").add("port", static_cast<int64_t>(sink.port()));
    j.add("publishes", sink.publishes()).add("connections", sink.connections()).add("ok", true);
    printResult(j.str());
    return 0;
}

}  // namespace moat::bench
