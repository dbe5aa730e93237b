#include "tests/bench/Conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace moat::bench {
namespace {

std::string sslErrors() {
    std::string out;
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown TLS error" : out;
}

int remainingMs(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

void setNonBlocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
}

void setNoDelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

SslCtxPtr makeClientContext(const TlsFiles& files, std::string& error) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        error = sslErrors();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr) != 1) {
        error = "cannot load CA " + files.ca + ": " + sslErrors();
        return nullptr;
    }
    if (!files.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx.get()) != 1) {
            error = "cannot load client certificate " + files.cert + ": " + sslErrors();
            return nullptr;
        }
    }
    return ctx;
}

std::unique_ptr<Conn> Conn::open(const Endpoint& ep, int timeoutMs, std::string& error) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    sockaddr_storage addr{};
    socklen_t addrLen = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    bool isIp = true;
    if (inet_pton(AF_INET, ep.host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(ep.port);
        addrLen = sizeof *v4;
    } else if (inet_pton(AF_INET6, ep.host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(ep.port);
        addrLen = sizeof *v6;
    } else {
        addrinfo hints{}, *res = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(ep.host.c_str(), nullptr, &hints, &res) != 0 || !res) {
            error = "cannot resolve " + ep.host;
            return nullptr;
        }
        std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
        addrLen = res->ai_addrlen;
        freeaddrinfo(res);
        if (addr.ss_family == AF_INET)
            v4->sin_port = htons(ep.port);
        else
            v6->sin6_port = htons(ep.port);
        isIp = false;
    }

    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return nullptr;
    }
    setNonBlocking(fd);
    setNoDelay(fd);
    std::unique_ptr<Conn> c(new Conn(fd, nullptr));
    if (!ep.source.empty() && !bindSource(fd, ep.source, error)) return nullptr;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), addrLen) != 0) {
        if (errno != EINPROGRESS) {
            error = std::string("connect: ") + std::strerror(errno);
            return nullptr;
        }
        if (!c->waitFor(POLLOUT, remainingMs(deadline))) {
            error = "connect: timed out";
            return nullptr;
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            error = std::string("connect: ") + std::strerror(err);
            return nullptr;
        }
    }
    if (!ep.tls) {
        if (!ep.wsPath.empty() && !c->upgrade(ep, remainingMs(deadline), error)) return nullptr;
        return c;
    }

    c->ssl_ = SSL_new(ep.tls);
    if (!c->ssl_) {
        error = sslErrors();
        return nullptr;
    }
    SSL_set_fd(c->ssl_, fd);
    if (ep.cert && ep.key && SSL_use_cert_and_key(c->ssl_, ep.cert, ep.key, nullptr, 1) != 1) {
        error = "client certificate: " + sslErrors();
        return nullptr;
    }
    if (ep.resume) SSL_set_session(c->ssl_, ep.resume);
    if (isIp) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl_), ep.host.c_str());
    } else {
        SSL_set_tlsext_host_name(c->ssl_, ep.host.c_str());
        SSL_set1_host(c->ssl_, ep.host.c_str());
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl_);
        if (r == 1) break;
        int e = SSL_get_error(c->ssl_, r);
        short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (ev == 0) {
            long v = SSL_get_verify_result(c->ssl_);
            error = "TLS handshake: " + sslErrors();
            if (v != X509_V_OK) error += std::string(" (") + X509_verify_cert_error_string(v) + ")";
            return nullptr;
        }
        if (!c->waitFor(ev, remainingMs(deadline))) {
            error = "TLS handshake: timed out";
            return nullptr;
        }
    }
    if (!ep.wsPath.empty() && !c->upgrade(ep, remainingMs(deadline), error)) return nullptr;
    return c;
}

bool Conn::upgrade(const Endpoint& ep, int timeoutMs, std::string& error) {
    // A fixed key: the server only checks its form (a benchmark, not a browser).
    const std::string req = "GET " + ep.wsPath + " HTTP/1.1\r\nHost: " + ep.host +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    if (!rawWriteAll(req.data(), req.size())) {
        error = "WebSocket upgrade: write failed";
        return false;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    char buf[4096];
    size_t end;
    while ((end = wsIn_.find("\r\n\r\n")) == std::string::npos) {
        ssize_t r = rawRead(buf, sizeof buf, remainingMs(deadline));
        if (r <= 0 || wsIn_.size() > 16384) {
            error = r == 0 ? "WebSocket upgrade: timed out" : "WebSocket upgrade: closed";
            return false;
        }
        wsIn_.append(buf, static_cast<size_t>(r));
    }
    if (wsIn_.compare(0, 13, "HTTP/1.1 101 ") != 0) {
        error = "WebSocket upgrade refused: " + wsIn_.substr(0, wsIn_.find("\r\n"));
        return false;
    }
    wsIn_.erase(0, end + 4);  // the first frames may follow the head
    ws_ = true;
    return true;
}

SSL_SESSION* Conn::resumableSession() const {
    if (!ssl_) return nullptr;
    SSL_SESSION* s = SSL_get1_session(ssl_);
    if (s && SSL_SESSION_is_resumable(s) != 1) {
        SSL_SESSION_free(s);
        return nullptr;
    }
    return s;
}

Fleet::~Fleet() {
    for (Device& d : devices_) {
        X509_free(d.cert);
        EVP_PKEY_free(d.key);
    }
}

bool Fleet::load(const std::string& path, std::string& error) {
    BIO* bio = BIO_new_file(path.c_str(), "r");
    if (bio == nullptr) {
        error = "cannot open fleet " + path;
        return false;
    }
    STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (infos == nullptr) {
        error = "cannot read fleet " + path + ": " + sslErrors();
        return false;
    }
    bool ok = true;
    for (int i = 0; i < sk_X509_INFO_num(infos); ++i) {
        X509_INFO* info = sk_X509_INFO_value(infos, i);
        if (info->x509 == nullptr || info->x_pkey == nullptr || info->x_pkey->dec_pkey == nullptr) {
            error = path + ": entry " + std::to_string(i) + " lacks a certificate or its key";
            ok = false;
            break;
        }
        Device d;
        d.cert = info->x509;
        X509_up_ref(d.cert);
        d.key = info->x_pkey->dec_pkey;
        EVP_PKEY_up_ref(d.key);
        devices_.push_back(d);
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (ok && devices_.empty()) {
        error = path + ": no devices";
        ok = false;
    }
    return ok;
}

std::unique_ptr<Conn> Conn::adopt(int fd) {
    setNonBlocking(fd);
    setNoDelay(fd);
    return std::unique_ptr<Conn>(new Conn(fd, nullptr));
}

Conn::~Conn() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
}

bool Conn::waitFor(short events, int timeoutMs) {
    pollfd p{fd_, events, 0};
    for (;;) {
        int r = ::poll(&p, 1, timeoutMs);
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) return false;
    }
}

bool Conn::sendRaw(const uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t r = ::send(fd_, p, n, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= static_cast<size_t>(r);
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!waitFor(POLLOUT, -1)) return false;
        } else if (!(r < 0 && errno == EINTR)) {
            return false;
        }
    }
    return true;
}

bool Conn::writeRecords(const void* data, size_t n, size_t recordLen) {
    if (ws_) return writeAll(data, n);  // one WebSocket frame (its own records)
    if (!ssl_ || recordLen == 0 || n <= recordLen) return writeAll(data, n);
    // Seal the records into memory, then hand the socket all of them at once. The socket BIO
    // is kept (one reference) and put back afterwards; the memory BIO goes with it.
    BIO* sock = SSL_get_wbio(ssl_);
    BIO* mem = BIO_new(BIO_s_mem());
    if (mem == nullptr || BIO_up_ref(sock) != 1) {
        BIO_free(mem);
        return false;
    }
    SSL_set0_wbio(ssl_, mem);
    auto* p = static_cast<const uint8_t*>(data);
    bool ok = true;
    for (size_t off = 0; ok && off < n; off += recordLen) {
        const size_t len = std::min(recordLen, n - off);
        size_t written = 0;
        ERR_clear_error();
        ok = SSL_write_ex(ssl_, p + off, len, &written) == 1 && written == len;
    }
    char* sealed = nullptr;
    const long m = BIO_get_mem_data(mem, &sealed);
    if (ok && m > 0) ok = sendRaw(reinterpret_cast<const uint8_t*>(sealed), static_cast<size_t>(m));
    SSL_set0_wbio(ssl_, sock);  // frees `mem`
    return ok;
}

bool Conn::writeAll(const void* data, size_t n) {
    if (!ws_) return rawWriteAll(data, n);
    // One masked binary frame (clients must mask; the key's value does not matter here).
    static constexpr uint8_t kKey[4] = {0x5a, 0xc3, 0x21, 0x7e};
    wsOut_.clear();
    wsOut_.push_back(static_cast<char>(0x82));
    if (n < 126) {
        wsOut_.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        wsOut_.push_back(static_cast<char>(0x80 | 126));
        wsOut_.push_back(static_cast<char>(n >> 8));
        wsOut_.push_back(static_cast<char>(n));
    } else {
        wsOut_.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i) wsOut_.push_back(static_cast<char>(uint64_t(n) >> (8 * i)));
    }
    wsOut_.append(reinterpret_cast<const char*>(kKey), 4);
    const size_t at = wsOut_.size();
    wsOut_.append(static_cast<const char*>(data), n);
    for (size_t i = 0; i < n; ++i) wsOut_[at + i] = static_cast<char>(wsOut_[at + i] ^ kKey[i & 3]);
    return rawWriteAll(wsOut_.data(), wsOut_.size());
}

ssize_t Conn::read(void* buf, size_t cap, int timeoutMs) {
    if (!ws_) return rawRead(buf, cap, timeoutMs);
    auto* out = static_cast<uint8_t*>(buf);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        // Unframe what is buffered: server frames are unmasked; only data frames' payload
        // goes to the caller, control frames are skipped (a close ends the stream).
        size_t got = 0, pos = 0;
        while (got < cap && !wsClosed_) {
            if (wsFrameLeft_ == 0) {
                if (wsIn_.size() - pos < 2) break;
                const auto b0 = static_cast<uint8_t>(wsIn_[pos]);
                const auto b1 = static_cast<uint8_t>(wsIn_[pos + 1]);
                size_t hdr = 2;
                uint64_t len = b1 & 0x7f;
                if (len == 126) hdr = 4;
                if (len == 127) hdr = 10;
                if (wsIn_.size() - pos < hdr) break;
                if (hdr > 2) {
                    len = 0;
                    for (size_t i = 2; i < hdr; ++i)
                        len = (len << 8) | static_cast<uint8_t>(wsIn_[pos + i]);
                }
                pos += hdr;
                const uint8_t op = b0 & 0x0f;
                if (op == 0x8) wsClosed_ = true;
                wsData_ = op == 0x2 || op == 0x0;
                wsFrameLeft_ = len;
                if (len == 0) continue;
            }
            const size_t avail = wsIn_.size() - pos;
            size_t take = wsFrameLeft_ < avail ? static_cast<size_t>(wsFrameLeft_) : avail;
            if (wsData_ && take > cap - got) take = cap - got;
            if (take == 0) break;
            if (wsData_) {
                std::memcpy(out + got, wsIn_.data() + pos, take);
                got += take;
            }
            pos += take;
            wsFrameLeft_ -= take;
        }
        wsIn_.erase(0, pos);
        if (got > 0) return static_cast<ssize_t>(got);
        if (wsClosed_) return -1;
        char tmp[65536];
        ssize_t r = rawRead(tmp, sizeof tmp, timeoutMs < 0 ? -1 : remainingMs(deadline));
        if (r <= 0) return r;
        wsIn_.append(tmp, static_cast<size_t>(r));
    }
}

bool Conn::rawWriteAll(const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        if (ssl_) {
            ERR_clear_error();
            int r = SSL_write(ssl_, p, static_cast<int>(n));
            if (r > 0) {
                p += r;
                n -= static_cast<size_t>(r);
                continue;
            }
            int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_WANT_WRITE) {
                if (!waitFor(POLLOUT, -1)) return false;
            } else if (e == SSL_ERROR_WANT_READ) {
                if (!waitFor(POLLIN, -1)) return false;
            } else {
                return false;
            }
        } else {
            ssize_t r = ::send(fd_, p, n, MSG_NOSIGNAL);
            if (r > 0) {
                p += r;
                n -= static_cast<size_t>(r);
            } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (!waitFor(POLLOUT, -1)) return false;
            } else if (r < 0 && errno == EINTR) {
                continue;
            } else {
                return false;
            }
        }
    }
    return true;
}

ssize_t Conn::rawRead(void* buf, size_t cap, int timeoutMs) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        short wait = POLLIN;
        if (ssl_) {
            ERR_clear_error();
            int r = SSL_read(ssl_, buf, static_cast<int>(cap));
            if (r > 0) return r;
            int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_WANT_WRITE)
                wait = POLLOUT;
            else if (e != SSL_ERROR_WANT_READ)
                return -1;
        } else {
            ssize_t r = ::recv(fd_, buf, cap, 0);
            if (r > 0) return r;
            if (r == 0) return -1;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        }
        int t = timeoutMs < 0 ? -1 : remainingMs(deadline);
        if (!waitFor(wait, t)) return 0;
    }
}

void Conn::close() {
    if (ssl_) {
        SSL_shutdown(ssl_);  // one-way close_notify; the peer's answer is not awaited
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

bool bindSource(int fd, const std::string& source, std::string& error) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1) {
        error = "source address is not an IPv4 literal: " + source;
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        error = "bind " + source + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

uint64_t raiseFileLimit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

}  // namespace moat::bench
