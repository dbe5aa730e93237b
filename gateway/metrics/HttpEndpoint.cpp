#include "gateway/metrics/HttpEndpoint.h"

#include <array>
#include <cstring>
#include <string_view>

namespace moat::metrics {
namespace {

// After the response, the connection lingers this long (at most) reading and discarding what
// the client still sends, so closing with unread data does not turn into an RST that could
// destroy the response in flight.
constexpr uint64_t kLingerMs = 2000;

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextType = "text/plain; charset=utf-8";

std::string_view reasonPhrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 431:
            return "Request Header Fields Too Large";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Error";
    }
}

bool isTokenChar(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct RequestLine {
    std::string_view method, path, query;
    int error = 0;  // HTTP status when the line is unusable
};

RequestLine parseRequestLine(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == 0 || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != line.npos) {
        return {.error = 400};
    }
    RequestLine r;
    r.method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    for (char c : r.method) {
        if (!isTokenChar(c)) return {.error = 400};
    }
    if (target.empty() || target.front() != '/') return {.error = 400};
    for (char c : target) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return {.error = 400};
    }
    if (version.substr(0, 5) != "HTTP/") return {.error = 400};
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return {.error = 505};
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string_view::npos) r.query = target.substr(q + 1);
    return r;
}

std::string peerAddress(const uv_tcp_t& tcp) {
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (uv_tcp_getpeername(&tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
    char name[64] = {0};
    if (addr.ss_family == AF_INET6) {
        const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&addr);
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {  // one address, whichever socket family
            sockaddr_in a4{};
            a4.sin_family = AF_INET;
            std::memcpy(&a4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
            uv_ip4_name(&a4, name, sizeof name);
        } else {
            uv_ip6_name(a6, name, sizeof name);
        }
    } else {
        uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&addr), name, sizeof name);
    }
    return name;
}

}  // namespace

struct HttpEndpoint::Connection {
    enum class State { Reading, Writing, Lingering, Closing };

    uv_tcp_t tcp{};
    uv_timer_t timer{};
    uv_write_t write{};
    uv_shutdown_t shutdown{};
    HttpEndpoint* owner = nullptr;  // null once detached (endpoint closed)
    Connection* prev = nullptr;
    Connection* next = nullptr;
    State state = State::Reading;
    int openHandles = 0;
    size_t used = 0;
    std::array<char, kMaxRequestBytes> request;
    std::array<char, 512> discard;
    std::string head;
    std::string body;
    std::string peer;  // the client's address (no port): the key of the per-address cap

    void unlink() {
        if (owner == nullptr) return;
        if (prev)
            prev->next = next;
        else
            owner->head_ = next;
        if (next) next->prev = prev;
        --owner->connections_;
        owner = nullptr;
    }

    void close() {
        if (state == State::Closing) return;
        state = State::Closing;
        unlink();
        auto onClosed = [](uv_handle_t* h) {
            auto* c = static_cast<Connection*>(h->data);
            if (--c->openHandles == 0) delete c;
        };
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp), onClosed);
        uv_close(reinterpret_cast<uv_handle_t*>(&timer), onClosed);
    }

    static void onAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* c = static_cast<Connection*>(h->data);
        if (c->state == State::Reading && c->used < c->request.size()) {
            *buf = uv_buf_init(c->request.data() + c->used,
                               static_cast<unsigned>(c->request.size() - c->used));
        } else {
            *buf = uv_buf_init(c->discard.data(), static_cast<unsigned>(c->discard.size()));
        }
    }

    static void onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
        auto* c = static_cast<Connection*>(s->data);
        if (c->state == State::Closing) return;
        if (nread < 0) {  // EOF or error: nothing more will come, whatever state we are in
            c->close();
            return;
        }
        if (c->state != State::Reading || nread == 0) return;
        const size_t before = c->used;
        c->used += static_cast<size_t>(nread);
        // Only the new bytes (plus 3 before them) can complete the blank line ending the head.
        const std::string_view all(c->request.data(), c->used);
        const size_t from = before >= 3 ? before - 3 : 0;
        const bool complete = all.find("\r\n\r\n", from) != std::string_view::npos ||
                              all.find("\n\n", from) != std::string_view::npos;
        if (complete) {
            if (c->owner) {
                // The head is in: the response gets its own deadline, from now.
                uv_timer_start(&c->timer, onTimeout,
                               static_cast<uint64_t>(c->owner->timeout_.count()), 0);
                c->owner->respond(*c);
            }
        } else if (c->used == c->request.size()) {
            c->send(431, kTextType, "request too large\n", false);
        }
    }

    static void onTimeout(uv_timer_t* t) { static_cast<Connection*>(t->data)->close(); }

    void send(int status, std::string_view type, std::string content, bool headOnly,
              std::string_view extraHeaders = {}) {
        body = std::move(content);
        head.clear();
        head.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
        head.append(reasonPhrase(status)).append("\r\nContent-Type: ").append(type);
        head.append("\r\nContent-Length: ").append(std::to_string(body.size()));
        head.append("\r\nCache-Control: no-store\r\nConnection: close\r\n");
        head.append(extraHeaders).append("\r\n");
        std::array<uv_buf_t, 2> bufs = {
            uv_buf_init(head.data(), static_cast<unsigned>(head.size())),
            uv_buf_init(body.data(), static_cast<unsigned>(headOnly ? 0 : body.size()))};
        state = State::Writing;
        write.data = this;
        if (uv_write(&write, reinterpret_cast<uv_stream_t*>(&tcp), bufs.data(), 2, onWritten) !=
            0) {
            close();
        }
    }

    static void onWritten(uv_write_t* req, int status) {
        auto* c = static_cast<Connection*>(req->data);
        if (c->state == State::Closing) return;
        if (status < 0) {
            c->close();
            return;
        }
        c->shutdown.data = c;
        if (uv_shutdown(&c->shutdown, reinterpret_cast<uv_stream_t*>(&c->tcp), onShutdown) != 0) {
            c->close();
        }
    }

    static void onShutdown(uv_shutdown_t* req, int status) {
        auto* c = static_cast<Connection*>(req->data);
        if (c->state == State::Closing) return;
        if (status < 0) {
            c->close();
            return;
        }
        c->state = State::Lingering;
        uv_timer_start(&c->timer, onTimeout, kLingerMs, 0);
    }
};

HttpEndpoint::HttpEndpoint(uv_loop_t* loop, std::string host, uint16_t port,
                           std::string metricsPath, std::function<std::string()> metricsBody,
                           std::function<bool()> healthy)
    : loop_(loop),
      host_(std::move(host)),
      port_(port),
      metricsPath_(std::move(metricsPath)),
      metricsBody_(std::move(metricsBody)),
      healthy_(std::move(healthy)) {}

HttpEndpoint::~HttpEndpoint() {
    close();
}

bool HttpEndpoint::start(std::string& error) {
    if (server_ != nullptr) {
        error = "metrics endpoint already started";
        return false;
    }
    sockaddr_storage addr{};
    const bool v6 = host_.find(':') != std::string::npos;
    int rc = v6 ? uv_ip6_addr(host_.c_str(), port_, reinterpret_cast<sockaddr_in6*>(&addr))
                : uv_ip4_addr(host_.c_str(), port_, reinterpret_cast<sockaddr_in*>(&addr));
    if (rc != 0) {
        error = "metrics bind: not an IP address: " + host_;
        return false;
    }
    server_ = new uv_tcp_t{};
    if ((rc = uv_tcp_init(loop_, server_)) != 0) {
        delete server_;
        server_ = nullptr;
        error = std::string("metrics endpoint: ") + uv_strerror(rc);
        return false;
    }
    server_->data = this;
    rc = uv_tcp_bind(server_, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(server_), 64, onConnection);
    int len = sizeof(addr);
    if (rc == 0) rc = uv_tcp_getsockname(server_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (rc != 0) {
        error = "metrics endpoint: cannot listen on " + (v6 ? "[" + host_ + "]" : host_) + ":" +
                std::to_string(port_) + ": " + uv_strerror(rc);
        close();
        return false;
    }
    boundPort_ =
        ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    return true;
}

void HttpEndpoint::close() {
    if (server_ != nullptr) {
        uv_close(reinterpret_cast<uv_handle_t*>(server_),
                 [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
        server_ = nullptr;
    }
    while (head_ != nullptr) head_->close();  // close() unlinks it
}

void HttpEndpoint::onConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<HttpEndpoint*>(server->data);
    if (status < 0) return;
    auto* c = new Connection();
    if (uv_tcp_init(self->loop_, &c->tcp) != 0) {
        delete c;
        return;
    }
    uv_timer_init(self->loop_, &c->timer);  // cannot fail
    c->tcp.data = c;
    c->timer.data = c;
    c->openHandles = 2;
    c->owner = self;
    c->next = self->head_;
    if (self->head_) self->head_->prev = c;
    self->head_ = c;
    ++self->connections_;
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
        c->close();
        return;
    }
    c->peer = peerAddress(c->tcp);
    size_t fromPeer = 0;
    for (const Connection* o = c->next; o != nullptr; o = o->next) {
        if (o->peer == c->peer) ++fromPeer;
    }
    // Caps are enforced by making room, not by refusing the newcomer: refusing would let
    // whoever holds the slots first (idle sockets) keep the health check out for good.
    if ((fromPeer >= kMaxConnectionsPerAddress && !self->evictFor(*c, c->peer)) ||
        (self->connections_ > kMaxConnections && !self->evictFor(*c, std::string()))) {
        c->close();
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, Connection::onTimeout,
                   static_cast<uint64_t>(self->headTimeout_.count()), 0);
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), Connection::onAlloc,
                      Connection::onRead) != 0) {
        c->close();
    }
}

bool HttpEndpoint::evictFor(const Connection& except, const std::string& peer) {
    // Oldest first (the list is newest first, so the last match wins); a connection that was
    // already answered (lingering) goes before one still waiting for its head, which goes
    // before one whose response is being written.
    auto rank = [](Connection::State s) {
        switch (s) {
            case Connection::State::Lingering:
                return 0;
            case Connection::State::Reading:
                return 1;
            default:
                return 2;
        }
    };
    Connection* victim = nullptr;
    for (Connection* o = head_; o != nullptr; o = o->next) {
        if (o == &except || o->state == Connection::State::Closing) continue;
        if (!peer.empty() && o->peer != peer) continue;
        if (victim == nullptr || rank(o->state) <= rank(victim->state)) victim = o;
    }
    if (victim == nullptr) return false;
    ++evictions_;
    victim->close();  // unlinks it: connections_ drops by one
    return true;
}

void HttpEndpoint::respond(Connection& c) {
    const std::string_view head(c.request.data(), c.used);
    const RequestLine line = parseRequestLine(head.substr(0, head.find('\n')));
    if (line.error != 0) {
        c.send(line.error, kTextType, std::string(reasonPhrase(line.error)) + "\n", false);
        return;
    }
    const bool isHead = line.method == "HEAD";
    if (admin_ && (line.path == "/owners" || line.path.substr(0, 8) == "/owners/")) {
        const bool loopback = c.peer.rfind("127.", 0) == 0 || c.peer == "::1";
        if (!loopback) {
            c.send(403, kTextType, "admin requests are answered on loopback only\n", isHead);
            return;
        }
        AdminResponse r = admin_(line.method, line.path, line.query);
        c.send(r.status, "application/json", r.body, isHead);
        return;
    }
    if (!isHead && line.method != "GET") {
        c.send(405, kTextType, "method not allowed\n", false, "Allow: GET, HEAD\r\n");
        return;
    }
    if (line.path == metricsPath_) {
        c.send(200, kMetricsType, metricsBody_ ? metricsBody_() : std::string(), isHead);
    } else if (line.path == "/healthz") {
        if (!healthy_ || healthy_()) {
            c.send(200, kTextType, "ok\n", isHead);
        } else {
            c.send(503, kTextType, "backend unreachable\n", isHead);
        }
    } else {
        c.send(404, kTextType, "not found\n", isHead);
    }
}

}  // namespace moat::metrics
