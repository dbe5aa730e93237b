// `flood`: what the gateway holds under connection floods (issue 6, DoS protection).
//
//   refuse     new TCP connections, as fast as --concurrency sockets in flight allow, from
//              source addresses the gateway refuses at accept (over connection_rate_per_ip /
//              max_connections_per_ip, or banned first with --ban). A refusal is the gateway
//              closing (EOF or RST) without a TLS answer; with --hello a real ClientHello is
//              sent, so an admitted connection is told apart by the ServerHello it gets, without
//              it an admitted connection is one still open after --answer-timeout-ms.
//              Reports attempts/s, refusals/s, gateway CPU per refusal, RSS before/peak/after.
//   slowloris  N TCP connections that never complete TLS (nothing, or the first --bytes of a
//              ClientHello, then silence). RSS per pending socket, and how long the gateway
//              takes to reap them (its handshake_timeout).
//   idle       N authenticated TLS + MQTT sessions that stay silent: RSS per connection of
//              every --pid process (gateway, broker).
//
// Loopback only in practice: sources are consecutive IPv4 addresses from --source-base
// (127.0.0.0/8 is all local on Linux), so per-IP limits see many devices. --probe adds a
// well-behaved TLS MQTT client (FloodProbe) timing a publish round trip every
// --probe-interval-ms, before the attack (baseline) and during it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/bench/Commands.h"
#include "tests/bench/FloodProbe.h"
#include "tests/bench/Mqtt.h"
#include "tests/bench/Stats.h"

namespace moat::bench {
namespace {

// ------------------------------------------------------------------ sockets

class UniqueFd {
  public:
    explicit UniqueFd(int fd = -1) : fd_(fd) {}
    ~UniqueFd() {
        if (fd_ >= 0) ::close(fd_);
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

// Closes with an RST (SO_LINGER 0): the flood must not fill the tool's port space with
// TIME_WAIT / FIN_WAIT sockets, and the gateway has no close handshake to spend time on.
void closeReset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

// Consecutive IPv4 addresses from `base`, skipping x.y.z.0 and x.y.z.255.
bool makeSources(const std::string& base, int64_t n, std::vector<std::string>& out,
                 std::string& error) {
    in_addr a{};
    if (inet_pton(AF_INET, base.c_str(), &a) != 1) {
        error = "--source-base must be an IPv4 address, got '" + base + "'";
        return false;
    }
    uint32_t v = ntohl(a.s_addr);
    while (static_cast<int64_t>(out.size()) < n) {
        if ((v & 0xff) != 0 && (v & 0xff) != 0xff) {
            in_addr x{htonl(v)};
            char buf[INET_ADDRSTRLEN];
            out.emplace_back(inet_ntop(AF_INET, &x, buf, sizeof buf));
        }
        if (++v == 0) {
            error = "--source-base: address space exhausted";
            return false;
        }
    }
    return true;
}

bool makeDestination(const std::string& host, uint16_t port, sockaddr_in& dst, std::string& error) {
    dst = {};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &dst.sin_addr) != 1) {
        error = "flood needs an IPv4 --host (source addresses are IPv4), got '" + host + "'";
        return false;
    }
    return true;
}

// A non-blocking socket bound to `source`, connect() started. -1 (error set) on failure;
// `connected` when connect completed at once.
int startConnect(const std::string& source, const sockaddr_in& dst, bool& connected,
                 std::string& error) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    if (!bindSource(fd, source, error)) {
        ::close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) == 0;
    if (!connected && errno != EINPROGRESS) {
        error = std::string("connect: ") + std::strerror(errno);
        closeReset(fd);
        return -1;
    }
    return fd;
}

int socketError(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

// What a read on a connected socket says: data, EOF / reset (the peer closed), or nothing yet.
enum class ReadState { Data, Closed, Nothing };
ReadState drain(int fd) {
    char buf[4096];
    bool data = false;
    for (;;) {
        ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            data = true;
            continue;
        }
        if (r == 0) return ReadState::Closed;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return data ? ReadState::Data : ReadState::Nothing;
        return ReadState::Closed;  // ECONNRESET and friends
    }
}

// One real TLS ClientHello (as the first flight of an OpenSSL client), generated once and
// replayed on every flood connection: the gateway answers it with a ServerHello when it
// admits the connection, and the tool spends no key generation per connection.
std::vector<uint8_t> cannedClientHello(std::string& error) {
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                          SSL_CTX_free);
    if (!ctx) return {};
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
    if (!ssl) return {};
    BIO* rb = BIO_new(BIO_s_mem());
    BIO* wb = BIO_new(BIO_s_mem());
    if (!rb || !wb) {
        BIO_free(rb);
        BIO_free(wb);
        return {};
    }
    SSL_set_bio(ssl.get(), rb, wb);  // ssl owns both now
    SSL_set_tlsext_host_name(ssl.get(), "localhost");
    SSL_connect(ssl.get());  // writes the ClientHello, then wants to read
    char* data = nullptr;
    long n = BIO_get_mem_data(wb, &data);
    if (n <= 0) {
        error = "cannot generate a ClientHello";
        return {};
    }
    return std::vector<uint8_t>(data, data + n);
}

// ------------------------------------------------------------------ options

struct Common {
    ClientSetup cs;
    sockaddr_in dst{};
    std::vector<std::string> sources;
    bool probe = false;
    int probeIntervalMs = 100;
    double baselineSeconds = 2;
    int settleMs = 500;
};

bool readCommon(Args& a, const char* mode, int64_t defaultSources, Common& c) {
    if (!setupClient(a, c.cs)) return false;
    int64_t nSources = a.integer("sources", defaultSources);
    std::string base = a.str("source-base", "127.10.0.1");
    c.probe = a.flag("probe");
    c.probeIntervalMs = static_cast<int>(a.integer("probe-interval-ms", 100));
    c.baselineSeconds = a.number("baseline-seconds", 2);
    c.settleMs = static_cast<int>(a.integer("settle-ms", 500));
    std::string error;
    if (!a.ok()) {
        error = a.error();
    } else if (nSources < 1 || nSources > 65536) {
        error = "--sources 1..65536";
    } else if (c.probeIntervalMs < 1 || c.baselineSeconds < 0 || c.settleMs < 0) {
        error = "--probe-interval-ms >= 1, --baseline-seconds and --settle-ms >= 0";
    } else if (c.probe && !c.cs.ep.tls) {
        error = "--probe needs --tls --ca --cert --key (a real device)";
    } else {
        makeSources(base, nSources, c.sources, error) &&
            makeDestination(c.cs.ep.host, c.cs.ep.port, c.dst, error);
    }
    if (!error.empty()) {
        std::fprintf(stderr, "moat-bench flood %s: %s\n", mode, error.c_str());
        return false;
    }
    return true;
}

std::vector<int64_t> sampleRss(const std::vector<Watched>& w) {
    std::vector<int64_t> out;
    for (const auto& p : w) out.push_back(rssKiB(p.pid));
    return out;
}

// `  rss LABEL  A -> B KiB` lines; JSON {label: {before, after[, peak]}}.
Json rssReport(const std::vector<Watched>& w, const std::vector<int64_t>& before,
               const std::vector<int64_t>& after, const std::vector<int64_t>* peak) {
    Json j;
    for (size_t i = 0; i < w.size(); ++i) {
        Json one;
        one.add("before_kib", before[i]).add("after_kib", after[i]);
        if (peak) one.add("peak_kib", (*peak)[i]);
        std::printf("  rss %-10s %8lld -> %8lld KiB", w[i].label.c_str(),
                    static_cast<long long>(before[i]), static_cast<long long>(after[i]));
        if (peak) std::printf("  (peak %lld KiB)", static_cast<long long>((*peak)[i]));
        std::printf("\n");
        j.add(w[i].label, one);
    }
    return j;
}

// Starts the probe and lets it take its baseline; false on failure (printed).
bool startProbe(const Common& c, FloodProbe& probe) {
    if (!c.probe) return true;
    std::string error;
    Endpoint ep = c.cs.ep;  // from the default source address, not a flooding one
    if (!probe.start(ep, c.cs.topic + "/probe", c.probeIntervalMs, error)) {
        std::fprintf(stderr, "moat-bench flood: probe: %s\n", error.c_str());
        return false;
    }
    sleepFor(c.baselineSeconds);
    probe.setPhase(FloodProbe::kAttack);
    return true;
}

void addProbe(Json& j, const Common& c, FloodProbe& probe) {
    if (!c.probe) return;
    probe.setPhase(FloodProbe::kOff);
    probe.stop();
    Json p;
    p.add("baseline", probe.report(FloodProbe::kBaseline));
    p.add("attack", probe.report(FloodProbe::kAttack));
    j.add("probe", p);
}

// ------------------------------------------------------------------ refuse

// One synchronous connection from `source`: true when the gateway closes it within timeoutMs
// without being sent anything (refused at accept).
bool refusedAtAccept(const std::string& source, const sockaddr_in& dst, int timeoutMs) {
    bool connected = false;
    std::string error;
    int fd = startConnect(source, dst, connected, error);
    if (fd < 0) return false;
    pollfd p{fd, POLLOUT, 0};
    if (!connected && (::poll(&p, 1, timeoutMs) != 1 || socketError(fd) != 0)) {
        closeReset(fd);
        return false;
    }
    p = {fd, POLLIN, 0};
    bool closed = ::poll(&p, 1, timeoutMs) == 1 && drain(fd) == ReadState::Closed;
    closeReset(fd);
    return closed;
}

// Gets every source banned: failed certificate authentications (an untrusted client
// certificate) until a plain connection from that source is refused at accept.
bool banSources(Args& a, const Common& c, std::string& error) {
    TlsFiles files{a.str("ca"), a.str("ban-cert"), a.str("ban-key")};
    if (files.cert.empty() || files.key.empty() || files.ca.empty()) {
        error = "--ban needs --ca, --ban-cert and --ban-key (a certificate the gateway rejects)";
        return false;
    }
    SslCtxPtr ctx = makeClientContext(files, error);
    if (!ctx) return false;
    int attempts = static_cast<int>(a.integer("ban-attempts", 20));
    for (const auto& src : c.sources) {
        Endpoint ep = c.cs.ep;
        ep.tls = ctx.get();
        ep.source = src;
        for (int i = 0; i < attempts; ++i) {
            std::string e;
            auto conn = Conn::open(ep, 5000, e);
            if (!conn) break;  // closed before any TLS answer: refused at accept (checked below)
            // TLS 1.3: the client finishes its side before the server has judged the client
            // certificate; the rejection arrives as an alert (a failed read) right after.
            char buf[64];
            if (conn->read(buf, sizeof buf, 5000) >= 0) {
                error = "the --ban-cert certificate was accepted by the server";
                return false;
            }
        }
        if (!refusedAtAccept(src, c.dst, 2000)) {
            error = "source " + src + " still admitted after up to " + std::to_string(attempts) +
                    " failed authentications (is bans.auth_failures larger?)";
            return false;
        }
    }
    return true;
}

int runRefuse(int argc, char** argv, int first) {
    Args a(clientFlags({"probe", "hello", "ban"}),
           clientValued({"sources", "source-base", "probe-interval-ms", "baseline-seconds",
                         "settle-ms", "seconds", "concurrency", "answer-timeout-ms", "ban-cert",
                         "ban-key", "ban-attempts"}),
           clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench flood refuse: %s\n", a.error().c_str());
        return 2;
    }
    Common c;
    if (!readCommon(a, "refuse", 4, c)) return 2;
    double seconds = a.number("seconds", 10);
    int concurrency = static_cast<int>(a.integer("concurrency", 128));
    int answerMs = static_cast<int>(a.integer("answer-timeout-ms", 250));
    bool sendHello = a.flag("hello");
    if (!a.ok() || seconds <= 0 || concurrency < 1 || concurrency > 4096 || answerMs < 1) {
        std::fprintf(stderr, "moat-bench flood refuse: %s\n",
                     a.ok() ? "--seconds > 0, --concurrency 1..4096, --answer-timeout-ms >= 1"
                            : a.error().c_str());
        return 2;
    }
    raiseFileLimit();
    std::string error;
    std::vector<uint8_t> hello;
    if (sendHello && (hello = cannedClientHello(error)).empty()) {
        std::fprintf(stderr, "moat-bench flood refuse: %s\n", error.c_str());
        return 1;
    }
    if (a.flag("ban") && !banSources(a, c, error)) {
        std::fprintf(stderr, "moat-bench flood refuse: --ban: %s\n", error.c_str());
        return 1;
    }
    FloodProbe probe;
    if (!startProbe(c, probe)) return 1;

    UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
    struct Slot {
        int fd = -1;
        bool connecting = false;
        Clock::time_point start;
    };
    std::vector<Slot> slots(static_cast<size_t>(concurrency));
    int64_t attempted = 0, refused = 0, answered = 0, held = 0, connectFailed = 0;
    std::string firstConnectError;
    std::vector<int64_t> refuseLatency;  // us, connect() -> the gateway's close
    refuseLatency.reserve(1 << 20);
    size_t nextSource = 0;
    int active = 0;

    enum class End { Refused, Answered, Held, ConnectFailed };
    auto finish = [&](size_t i, End how) {
        Slot& s = slots[i];
        switch (how) {
            case End::Refused:
                ++refused;
                if (refuseLatency.size() < refuseLatency.capacity())
                    refuseLatency.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                                                Clock::now() - s.start)
                                                .count());
                break;
            case End::Answered:
                ++answered;
                break;
            case End::Held:
                ++held;
                break;
            case End::ConnectFailed:
                ++connectFailed;
                break;
        }
        closeReset(s.fd);  // also leaves the epoll set
        s.fd = -1;
        --active;
    };
    // The connection is established: send the ClientHello (if any), then watch for the answer.
    auto established = [&](size_t i, bool added) {
        Slot& s = slots[i];
        s.connecting = false;
        if (!hello.empty() && ::send(s.fd, hello.data(), hello.size(), MSG_NOSIGNAL) < 0 &&
            errno != EAGAIN) {
            finish(i, End::Refused);  // EPIPE / ECONNRESET: already closed by the gateway
            return;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = i;
        epoll_ctl(ep.get(), added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s.fd, &ev);
    };
    auto openInto = [&](size_t i) {
        Slot& s = slots[i];
        bool connected = false;
        std::string e;
        const std::string& src = c.sources[nextSource++ % c.sources.size()];
        ++attempted;
        s.start = Clock::now();
        s.fd = startConnect(src, c.dst, connected, e);
        if (s.fd < 0) {
            ++connectFailed;
            if (firstConnectError.empty()) firstConnectError = e;
            return false;
        }
        ++active;
        if (connected) {
            established(i, false);
            return true;
        }
        s.connecting = true;
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.u64 = i;
        epoll_ctl(ep.get(), EPOLL_CTL_ADD, s.fd, &ev);
        return true;
    };

    std::vector<int64_t> rssBefore = sampleRss(c.cs.watched), rssPeak = rssBefore;
    CpuWindow cpu(c.cs.watched);
    cpu.start();
    auto t0 = Clock::now();
    auto stopOpening = t0 + std::chrono::duration<double>(seconds);
    auto nextRss = t0;
    const auto answer = std::chrono::milliseconds(answerMs);
    std::vector<epoll_event> events(512);
    for (;;) {
        auto now = Clock::now();
        if (now < stopOpening) {
            for (size_t i = 0; i < slots.size(); ++i) {
                if (slots[i].fd < 0 && !openInto(i)) {
                    // Out of ports / descriptors: back off briefly instead of spinning.
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    break;
                }
            }
        } else if (active == 0) {
            break;
        }
        int n = epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), 5);
        for (int k = 0; k < n; ++k) {
            size_t i = events[k].data.u64;
            Slot& s = slots[i];
            if (s.fd < 0) continue;
            if (s.connecting) {
                if (int err = socketError(s.fd); err != 0) {
                    // Reset before we saw the connect complete: on loopback the kernel
                    // finished the TCP handshake and the server accepted and reset it at
                    // once (HAProxy's `tcp-request connection reject` does): a refusal.
                    if (err == ECONNRESET) {
                        finish(i, End::Refused);
                        continue;
                    }
                    if (firstConnectError.empty())
                        firstConnectError = std::string("connect: ") + std::strerror(err);
                    finish(i, End::ConnectFailed);
                    continue;
                }
                established(i, true);
                if (s.fd < 0) continue;
            }
            ReadState r = drain(s.fd);
            if (r == ReadState::Closed) finish(i, End::Refused);
            if (r == ReadState::Data) finish(i, End::Answered);
        }
        now = Clock::now();
        for (size_t i = 0; i < slots.size(); ++i) {
            if (slots[i].fd >= 0 && now - slots[i].start > answer) {
                if (slots[i].connecting && firstConnectError.empty())
                    firstConnectError = "connect: timed out";
                finish(i, slots[i].connecting ? End::ConnectFailed : End::Held);
            }
        }
        if (now >= nextRss) {
            auto rss = sampleRss(c.cs.watched);
            for (size_t i = 0; i < rss.size(); ++i) rssPeak[i] = std::max(rssPeak[i], rss[i]);
            nextRss = now + std::chrono::milliseconds(100);
        }
    }
    double elapsed = secondsSince(t0);
    sleepFor(c.settleMs / 1000.0);  // the gateway finishes its last closes and audit lines
    cpu.stop();
    std::vector<int64_t> rssAfter = sampleRss(c.cs.watched);

    double p50 = percentile(refuseLatency, 50), p99 = percentile(refuseLatency, 99);
    std::printf("flood refuse %.1f s, %d in flight, %zu source addresses, %s\n", elapsed,
                concurrency, c.sources.size(),
                a.flag("ban") ? "banned sources" : "sources over their limits");
    std::printf(
        "  %lld attempts (%.0f/s): %lld refused at accept (%.0f/s), %lld answered with "
        "TLS, %lld admitted and held, %lld connect failures\n",
        static_cast<long long>(attempted), attempted / elapsed, static_cast<long long>(refused),
        refused / elapsed, static_cast<long long>(answered), static_cast<long long>(held),
        static_cast<long long>(connectFailed));
    std::printf("  connect -> refusal p50 %.0f us, p99 %.0f us\n", p50, p99);
    if (!firstConnectError.empty())
        std::printf("  first connect error: %s\n", firstConnectError.c_str());
    Json cpuJson = cpu.perUnit(static_cast<double>(refused), "refused");
    Json rss = rssReport(c.cs.watched, rssBefore, rssAfter, &rssPeak);

    Json j;
    j.add("cmd", "flood").add("mode", "refuse").add("banned", a.flag("ban"));
    j.add("seconds", elapsed).add("concurrency", concurrency);
    j.add("sources", static_cast<int64_t>(c.sources.size()));
    j.add("attempted", attempted).add("attempted_per_s", attempted / elapsed);
    j.add("refused", refused).add("refused_per_s", refused / elapsed);
    j.add("answered", answered).add("held", held).add("connect_failed", connectFailed);
    j.add("refuse_p50_us", p50).add("refuse_p99_us", p99);
    if (!cpu.empty()) j.add("cpu_us_per_refused", cpuJson).add("rss", rss);
    addProbe(j, c, probe);
    bool ok = refused > 0;
    if (!ok) j.add("error", "no connection was refused at accept");
    j.add("ok", ok);
    printResult(j.str());
    return ok ? 0 : 1;
}

// ------------------------------------------------------------------ slowloris

int runSlowloris(int argc, char** argv, int first) {
    Args a(clientFlags({"probe"}),
           clientValued({"sources", "source-base", "probe-interval-ms", "baseline-seconds",
                         "settle-ms", "count", "concurrency", "bytes", "max-wait-seconds"}),
           clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench flood slowloris: %s\n", a.error().c_str());
        return 2;
    }
    Common c;
    if (!readCommon(a, "slowloris", 100, c)) return 2;
    int64_t count = a.integer("count", 1000);
    int concurrency = static_cast<int>(a.integer("concurrency", 256));
    int64_t bytes = a.integer("bytes", 0);
    double maxWait = a.number("max-wait-seconds", 30);
    if (!a.ok() || count < 1 || concurrency < 1 || bytes < 0 || maxWait <= 0) {
        std::fprintf(stderr, "moat-bench flood slowloris: %s\n",
                     a.ok() ? "--count >= 1, --concurrency >= 1, --bytes >= 0, "
                              "--max-wait-seconds > 0"
                            : a.error().c_str());
        return 2;
    }
    uint64_t limit = raiseFileLimit();
    if (limit < static_cast<uint64_t>(count) + 64) {
        std::fprintf(stderr, "moat-bench flood slowloris: open-file limit %llu < %lld + 64\n",
                     static_cast<unsigned long long>(limit), static_cast<long long>(count));
        return 1;
    }
    std::string error;
    std::vector<uint8_t> prefix;
    if (bytes > 0) {
        prefix = cannedClientHello(error);
        if (prefix.empty()) {
            std::fprintf(stderr, "moat-bench flood slowloris: %s\n", error.c_str());
            return 1;
        }
        prefix.resize(std::min<size_t>(prefix.size() - 1, static_cast<size_t>(bytes)));
    }
    FloodProbe probe;
    if (!startProbe(c, probe)) return 1;

    enum class St { Idle, Connecting, Pending, Closed, Failed };
    struct Sock {
        int fd = -1;
        St st = St::Idle;
        Clock::time_point start, connected, closed;
    };
    std::vector<Sock> socks(static_cast<size_t>(count));
    UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
    int64_t connecting = 0, pending = 0, closedCount = 0, failed = 0;
    std::string firstError;

    auto close = [&](size_t i, St st) {
        Sock& s = socks[i];
        if (s.st == St::Connecting) --connecting;
        if (s.st == St::Pending) --pending;
        if (st == St::Closed) ++closedCount;
        if (st == St::Failed) ++failed;
        s.st = st;
        s.closed = Clock::now();
        closeReset(s.fd);
        s.fd = -1;
    };
    auto established = [&](size_t i, bool added) {
        Sock& s = socks[i];
        if (s.st == St::Connecting) --connecting;
        s.st = St::Pending;
        ++pending;
        s.connected = Clock::now();
        if (!prefix.empty() && ::send(s.fd, prefix.data(), prefix.size(), MSG_NOSIGNAL) < 0 &&
            errno != EAGAIN) {
            close(i, St::Closed);
            return;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = i;
        epoll_ctl(ep.get(), added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s.fd, &ev);
    };
    std::vector<epoll_event> events(512);
    auto pump = [&](int timeoutMs) {
        int n = epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), timeoutMs);
        for (int k = 0; k < n; ++k) {
            size_t i = events[k].data.u64;
            Sock& s = socks[i];
            if (s.fd < 0) continue;
            if (s.st == St::Connecting) {
                if (int err = socketError(s.fd); err != 0) {
                    if (firstError.empty())
                        firstError = std::string("connect: ") + std::strerror(err);
                    close(i, St::Failed);
                    continue;
                }
                established(i, true);
                if (s.fd < 0) continue;
            }
            if (drain(s.fd) == ReadState::Closed) close(i, St::Closed);
        }
    };

    std::vector<int64_t> rssBefore = sampleRss(c.cs.watched);
    CpuWindow cpu(c.cs.watched);
    cpu.start();
    auto t0 = Clock::now();
    const auto connectTimeout = std::chrono::seconds(10);
    size_t next = 0;
    while (next < socks.size() || connecting > 0) {
        while (next < socks.size() && connecting < concurrency) {
            Sock& s = socks[next];
            bool connected = false;
            s.start = Clock::now();
            s.fd = startConnect(c.sources[next % c.sources.size()], c.dst, connected, error);
            if (s.fd < 0) {
                s.st = St::Failed;
                ++failed;
                if (firstError.empty()) firstError = error;
            } else if (connected) {
                established(next, false);
            } else {
                s.st = St::Connecting;
                ++connecting;
                epoll_event ev{};
                ev.events = EPOLLOUT;
                ev.data.u64 = next;
                epoll_ctl(ep.get(), EPOLL_CTL_ADD, s.fd, &ev);
            }
            ++next;
        }
        pump(5);
        auto now = Clock::now();
        for (size_t i = 0; i < next; ++i) {
            if (socks[i].st == St::Connecting && now - socks[i].start > connectTimeout) {
                if (firstError.empty()) firstError = "connect: timed out";
                close(i, St::Failed);
            }
        }
    }
    double openSeconds = secondsSince(t0);
    auto sampleAt = Clock::now() + std::chrono::milliseconds(c.settleMs);
    while (Clock::now() < sampleAt) pump(5);
    int64_t pendingAtSample = pending, closedBeforeSample = closedCount;
    std::vector<int64_t> rssHeld = sampleRss(c.cs.watched);

    auto giveUp = t0 + std::chrono::duration<double>(maxWait);
    while (pending > 0 && Clock::now() < giveUp) pump(20);
    int64_t notReaped = pending;
    std::vector<int64_t> reap;  // ms, established -> closed by the gateway
    for (size_t i = 0; i < socks.size(); ++i) {
        if (socks[i].st == St::Pending) close(i, St::Idle);  // ours, not the gateway's
        if (socks[i].st == St::Closed)
            reap.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(socks[i].closed -
                                                                                 socks[i].connected)
                               .count());
    }
    double elapsed = secondsSince(t0);
    sleepFor(c.settleMs / 1000.0);
    cpu.stop();
    std::vector<int64_t> rssAfter = sampleRss(c.cs.watched);

    int64_t opened = count - failed;
    double reapMin = percentile(reap, 0), reapP50 = percentile(reap, 50),
           reapMax = percentile(reap, 100);
    std::printf("flood slowloris count=%lld from %zu source addresses, %lld byte(s) of TLS sent\n",
                static_cast<long long>(count), c.sources.size(),
                static_cast<long long>(prefix.size()));
    std::printf(
        "  %lld established in %.2f s (%lld failed); at the RSS sample (%d ms later) "
        "%lld pending, %lld already closed by the gateway\n",
        static_cast<long long>(opened), openSeconds, static_cast<long long>(failed), c.settleMs,
        static_cast<long long>(pendingAtSample), static_cast<long long>(closedBeforeSample));
    std::printf(
        "  reaped by the gateway: %lld, after min %.0f ms / p50 %.0f ms / max %.0f ms; "
        "%lld still open after %.0f s\n",
        static_cast<long long>(reap.size()), reapMin, reapP50, reapMax,
        static_cast<long long>(notReaped), maxWait);
    if (!firstError.empty()) std::printf("  first error: %s\n", firstError.c_str());
    Json perSock;
    for (size_t i = 0; i < c.cs.watched.size(); ++i) {
        double kib = pendingAtSample > 0 ? static_cast<double>(rssHeld[i] - rssBefore[i]) /
                                               static_cast<double>(pendingAtSample)
                                         : 0;
        std::printf("  rss %-10s %8.2f KiB/pending socket  (%lld -> %lld held -> %lld reaped)\n",
                    c.cs.watched[i].label.c_str(), kib, static_cast<long long>(rssBefore[i]),
                    static_cast<long long>(rssHeld[i]), static_cast<long long>(rssAfter[i]));
        perSock.add(c.cs.watched[i].label, kib);
    }
    Json cpuJson = cpu.perUnit(static_cast<double>(opened), "connection");

    Json j;
    j.add("cmd", "flood").add("mode", "slowloris").add("count", count);
    j.add("bytes_sent", static_cast<int64_t>(prefix.size()));
    j.add("sources", static_cast<int64_t>(c.sources.size()));
    j.add("established", opened).add("failed", failed).add("open_seconds", openSeconds);
    j.add("pending_at_sample", pendingAtSample).add("closed_before_sample", closedBeforeSample);
    j.add("reaped", static_cast<int64_t>(reap.size())).add("not_reaped", notReaped);
    j.add("reap_min_ms", reapMin).add("reap_p50_ms", reapP50).add("reap_max_ms", reapMax);
    j.add("seconds", elapsed);
    if (!c.cs.watched.empty()) {
        j.add("rss_kib_per_pending", perSock);
        j.add("rss", rssReport(c.cs.watched, rssBefore, rssAfter, nullptr));
        j.add("cpu_us_per_connection", cpuJson);
    }
    addProbe(j, c, probe);
    bool ok = failed == 0 && notReaped == 0;
    if (!firstError.empty()) j.add("error", firstError);
    if (notReaped > 0) j.add("error", "pending sockets were not reaped within --max-wait-seconds");
    j.add("ok", ok);
    printResult(j.str());
    return ok ? 0 : 1;
}

// ------------------------------------------------------------------ idle

// Opens `n` sessions with `concurrency` threads, session i from sources[i % size].
bool openSpread(const Common& c, int64_t n, int concurrency, const std::string& prefix,
                std::vector<std::unique_ptr<mqtt::Client>>& out, std::string& error) {
    std::atomic<int64_t> next{0};
    std::mutex mu;
    bool failed = false;
    auto worker = [&] {
        int64_t i;
        Endpoint ep = c.cs.ep;
        while ((i = next.fetch_add(1)) < n) {
            std::string e;
            ep.source = c.sources[static_cast<size_t>(i) % c.sources.size()];
            auto s = mqtt::connectClient(ep, prefix + std::to_string(i), 15000, e);
            std::lock_guard lock(mu);
            if (!s) {
                if (!failed)
                    error = "session " + std::to_string(i) + " from " + ep.source + ": " + e;
                failed = true;
                next.store(n);
                return;
            }
            out.push_back(std::move(s));
        }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < concurrency; ++i) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    return !failed;
}

int runIdleFlood(int argc, char** argv, int first) {
    Args a(clientFlags({}),
           clientValued({"sources", "source-base", "settle-ms", "count", "concurrency", "warm"}),
           clientRepeatable());
    if (!a.parse(argc, argv, first)) {
        std::fprintf(stderr, "moat-bench flood idle: %s\n", a.error().c_str());
        return 2;
    }
    Common c;
    if (!readCommon(a, "idle", 100, c)) return 2;
    int64_t count = a.integer("count", 1000);
    int concurrency = static_cast<int>(a.integer("concurrency", 8));
    int64_t warm = a.integer("warm", 20);
    if (!a.ok() || count < 1 || concurrency < 1 || concurrency > 256 || warm < 0) {
        std::fprintf(
            stderr, "moat-bench flood idle: %s\n",
            a.ok() ? "--count >= 1, --concurrency 1..256, --warm >= 0" : a.error().c_str());
        return 2;
    }
    uint64_t limit = raiseFileLimit();
    if (limit < static_cast<uint64_t>(count + warm) + 64) {
        std::fprintf(stderr, "moat-bench flood idle: open-file limit %llu < %lld sessions + 64\n",
                     static_cast<unsigned long long>(limit), static_cast<long long>(count + warm));
        return 1;
    }
    // The tool holds as many sessions as the gateway: keep its own TLS buffers small too.
    if (c.cs.tls) SSL_CTX_set_mode(c.cs.tls.get(), SSL_MODE_RELEASE_BUFFERS);

    std::string tag = std::to_string(::getpid()), error;
    std::vector<std::unique_ptr<mqtt::Client>> warmSessions, sessions;
    sessions.reserve(static_cast<size_t>(count));
    if (!openSpread(c, warm, concurrency, "mb-fw-" + tag + "-", warmSessions, error)) {
        std::fprintf(stderr, "moat-bench flood idle: warm-up: %s\n", error.c_str());
        return 1;
    }
    sleepFor(c.settleMs / 1000.0);
    std::vector<int64_t> before = sampleRss(c.cs.watched);
    CpuWindow cpu(c.cs.watched);
    cpu.start();
    auto t0 = Clock::now();
    bool opened = openSpread(c, count, concurrency, "mb-fi-" + tag + "-", sessions, error);
    double openSeconds = secondsSince(t0);
    cpu.stop();
    sleepFor(c.settleMs / 1000.0);
    std::vector<int64_t> after = sampleRss(c.cs.watched);

    std::printf("flood idle count=%lld tls=%s from %zu source addresses: %zu open in %.2f s\n",
                static_cast<long long>(count), c.cs.ep.tls ? "yes" : "no", c.sources.size(),
                sessions.size(), openSeconds);
    Json perConn;
    double total = 0;
    for (size_t i = 0; i < c.cs.watched.size(); ++i) {
        double kib = sessions.empty() ? 0
                                      : static_cast<double>(after[i] - before[i]) /
                                            static_cast<double>(sessions.size());
        total += kib;
        std::printf("  rss %-10s %8.2f KiB/connection  (%lld -> %lld KiB)\n",
                    c.cs.watched[i].label.c_str(), kib, static_cast<long long>(before[i]),
                    static_cast<long long>(after[i]));
        perConn.add(c.cs.watched[i].label, kib);
    }
    if (!c.cs.watched.empty()) perConn.add("total", total);
    Json cpuJson = cpu.perUnit(static_cast<double>(sessions.size()), "session");
    if (!opened) std::fprintf(stderr, "moat-bench flood idle: %s\n", error.c_str());

    Json j;
    j.add("cmd", "flood").add("mode", "idle").add("count", count);
    j.add("opened", static_cast<int64_t>(sessions.size())).add("open_seconds", openSeconds);
    j.add("sources", static_cast<int64_t>(c.sources.size()));
    if (!c.cs.watched.empty()) {
        j.add("rss_kib_per_conn", perConn)
            .add("rss", rssReport(c.cs.watched, before, after, nullptr));
        j.add("cpu_us_per_session", cpuJson);
    }
    if (!opened) j.add("error", error);
    j.add("ok", opened);
    printResult(j.str());
    return opened ? 0 : 1;
}

}  // namespace

int runFlood(int argc, char** argv, int first) {
    if (first >= argc) {
        std::fprintf(stderr, "moat-bench flood: MODE required: refuse | slowloris | idle\n");
        return 2;
    }
    std::string mode = argv[first];
    if (mode == "refuse") return runRefuse(argc, argv, first + 1);
    if (mode == "slowloris") return runSlowloris(argc, argv, first + 1);
    if (mode == "idle") return runIdleFlood(argc, argv, first + 1);
    std::fprintf(stderr, "moat-bench flood: unknown mode '%s' (refuse | slowloris | idle)\n",
                 mode.c_str());
    return 2;
}

}  // namespace moat::bench
