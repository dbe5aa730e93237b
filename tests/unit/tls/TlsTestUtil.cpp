#include "tests/unit/tls/TlsTestUtil.h"

#include <openssl/err.h>

#include <catch2/catch.hpp>
#include <cstdlib>

namespace moat::tls::test {

const std::string& certDir() {
    static const std::string dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/moat-unit-tls-XXXXXX";
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (mkdtemp(buf.data()) == nullptr) std::abort();
        std::string d(buf.data());
        const std::string cmd =
            std::string("bash '") + MOAT_SOURCE_DIR + "/tests/certs/gen_certs.sh' '" + d + "'";
        if (std::system(cmd.c_str()) != 0) std::abort();
        // Removed at exit: the keys are throwaway but the temp dir should not pile up.
        static const std::string toRemove = d;
        std::atexit([] { std::system(("rm -rf '" + toRemove + "'").c_str()); });
        return d;
    }();
    return dir;
}

std::string certPath(const std::string& name) {
    return certDir() + "/" + name;
}

config::TlsConfig serverConfig(bool requireClientCert, const std::string& crl,
                               const std::string& minVersion) {
    config::TlsConfig cfg;
    cfg.cert = certPath("server.pem");
    cfg.key = certPath("server.key");
    cfg.clientCa = certPath("ca.pem");
    cfg.crl = crl.empty() ? "" : certPath(crl);
    cfg.requireClientCert = requireClientCert;
    cfg.minVersion = minVersion;
    return cfg;
}

std::shared_ptr<TlsContext> makeServer(const config::TlsConfig& cfg) {
    std::string error;
    auto ctx = TlsContext::create(cfg, error);
    INFO(error);
    REQUIRE(ctx);
    return ctx;
}

SslCtxPtr makeClientCtx(const std::string& cert, int maxVersion) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    REQUIRE(ctx);
    REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), certPath("ca.pem").c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!cert.empty()) {
        const std::string pem = cert == "device3" ? "device3-chain.pem" : cert + ".pem";
        REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), certPath(pem).c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), certPath(cert + ".key").c_str(),
                                            SSL_FILETYPE_PEM) == 1);
    }
    if (maxVersion) SSL_CTX_set_max_proto_version(ctx.get(), maxVersion);
    return ctx;
}

Client::Client(SSL_CTX* ctx) : ssl_(SSL_new(ctx)) {
    REQUIRE(ssl_);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio_, -1);  // empty = "retry", not EOF
    SSL_set_bio(ssl_.get(), rbio_, wbio_);
    SSL_set_connect_state(ssl_.get());
    SSL_set_tlsext_host_name(ssl_.get(), "localhost");
    SSL_set1_host(ssl_.get(), "localhost");
}

std::vector<uint8_t> Client::takeOutput() {
    std::vector<uint8_t> out;
    char buf[4096];
    int n;
    while ((n = BIO_read(wbio_, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
    return out;
}

void Client::feed(const std::vector<uint8_t>& bytes) {
    if (!bytes.empty()) BIO_write(rbio_, bytes.data(), int(bytes.size()));
}

int Client::handshake() {
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) return 1;
    const int e = SSL_get_error(ssl_.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return -1;
}

std::vector<uint8_t> Client::readAll(bool* closed) {
    std::vector<uint8_t> out;
    uint8_t buf[16384];
    for (;;) {
        size_t n = 0;
        const int r = SSL_read_ex(ssl_.get(), buf, sizeof buf, &n);
        if (r == 1) {
            out.insert(out.end(), buf, buf + n);
            continue;
        }
        const int e = SSL_get_error(ssl_.get(), r);
        if (closed) *closed = e == SSL_ERROR_ZERO_RETURN;
        ERR_clear_error();
        return out;
    }
}

void Client::write(const std::vector<uint8_t>& data) {
    size_t n = 0;
    REQUIRE(SSL_write_ex(ssl_.get(), data.data(), data.size(), &n) == 1);
    REQUIRE(n == data.size());
}

std::vector<uint8_t> takeAll(TlsSession& s) {
    std::vector<uint8_t> out(s.pendingOutput());
    const size_t n = s.takeOutput(out.data(), out.size());
    out.resize(n);
    REQUIRE(s.pendingOutput() == 0);
    return out;
}

TlsSession::Status pumpHandshake(Client& c, TlsSession& s, int* clientResult) {
    int cr = 0;
    TlsSession::Status st = TlsSession::Status::WantMore;
    for (int round = 0; round < 20; ++round) {
        if (cr == 0) cr = c.handshake();
        const std::vector<uint8_t> toServer = c.takeOutput();
        if (!toServer.empty()) s.feed(toServer.data(), toServer.size());
        st = s.handshake();
        c.feed(takeAll(s));
        if (st == TlsSession::Status::Error) break;
        if (st == TlsSession::Status::Ok && cr == 1) break;
        if (cr < 0) break;
    }
    if (cr == 1 && st == TlsSession::Status::Ok) {
        // TLS 1.3: the client may still have to process the ticket; harmless either way.
        c.readAll();
    }
    if (clientResult) *clientResult = cr;
    return st;
}

}  // namespace moat::tls::test
