// handshake_cpu: the gateway's TLS server CPU per full mTLS handshake, in process (not a test;
// no thresholds). A TlsContext and an OpenSSL client talk over memory buffers on one thread;
// only the server's calls are timed, with the thread's CPU clock, so the figure leaves out the
// client, the kernel and MQTT, and a busy machine disturbs it far less than the end-to-end
// bench. Three shapes, each with tls.verify_cache on and off:
//   known    one device reconnecting without a ticket (the same chain every time);
//   chain    the same, a device under an intermediate CA (device3 + its intermediate, with
//            whole-chain CRL checks: the most verification work per handshake);
//   fleet    a distinct device per handshake (FLEET.pem from gen_fleet.py), if given.
//
//   ./handshake_cpu CERTDIR [COUNT] [FLEET.pem]      (CERTDIR: tests/certs/gen_certs.sh output)
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/tls/TlsContext.h"
#include "gateway/tls/TlsSession.h"
#include "gateway/tls/VerifiedChainCache.h"

using namespace moat;

namespace {

int64_t threadCpuNs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Identity {
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
};

std::vector<Identity> readIdentities(const std::string& path) {
    std::vector<Identity> out;
    BIO* bio = BIO_new_file(path.c_str(), "r");
    if (!bio) return out;
    STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); ++i) {
        X509_INFO* info = sk_X509_INFO_value(infos, i);
        if (!info->x509 || !info->x_pkey || !info->x_pkey->dec_pkey) continue;
        X509_up_ref(info->x509);
        EVP_PKEY_up_ref(info->x_pkey->dec_pkey);
        out.push_back({info->x509, info->x_pkey->dec_pkey});
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    return out;
}

SSL_CTX* clientContext(const std::string& dir, const std::string& chain, const std::string& key) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_load_verify_locations(ctx, (dir + "/ca.pem").c_str(), nullptr);
    if (!chain.empty() &&
        (SSL_CTX_use_certificate_chain_file(ctx, (dir + "/" + chain).c_str()) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, (dir + "/" + key).c_str(), SSL_FILETYPE_PEM) != 1)) {
        std::fprintf(stderr, "handshake_cpu: cannot load %s\n", chain.c_str());
        std::exit(1);
    }
    return ctx;
}

// One handshake; returns the server's CPU time in ns, or -1 when it failed.
int64_t oneHandshake(SSL_CTX* server, SSL_CTX* client, const Identity* id) {
    SSL* c = SSL_new(client);
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(c, rbio, wbio);
    SSL_set_connect_state(c);
    if (id) SSL_use_cert_and_key(c, id->cert, id->key, nullptr, 1);
    int64_t serverNs = 0;
    const int64_t t0 = threadCpuNs();
    tls::TlsSession s(server);  // constructing it is part of the server's cost
    serverNs += threadCpuNs() - t0;
    tls::TlsSession::Status st = tls::TlsSession::Status::WantMore;
    int cr = 0;
    std::vector<uint8_t> buf(64 * 1024);
    for (int round = 0; round < 20; ++round) {
        if (cr != 1) {
            const int r = SSL_do_handshake(c);
            cr = r == 1 ? 1 : 0;
            if (r != 1) {
                const int e = SSL_get_error(c, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) break;
            }
        }
        const int n = BIO_read(wbio, buf.data(), static_cast<int>(buf.size()));
        const int64_t t = threadCpuNs();
        if (n > 0) s.feed(buf.data(), static_cast<size_t>(n));
        st = s.handshake();
        const size_t out = s.takeOutput(buf.data(), buf.size());
        serverNs += threadCpuNs() - t;
        if (out) BIO_write(rbio, buf.data(), static_cast<int>(out));
        if (st == tls::TlsSession::Status::Error) break;
        if (st == tls::TlsSession::Status::Ok && cr == 1) break;
    }
    SSL_free(c);
    ERR_clear_error();
    return st == tls::TlsSession::Status::Ok ? serverNs : -1;
}

std::shared_ptr<tls::TlsContext> server(const std::string& dir, bool cache) {
    config::TlsConfig cfg;
    cfg.cert = dir + "/server.pem";
    cfg.key = dir + "/server.key";
    cfg.clientCa = dir + "/ca.pem";
    cfg.crl = dir + "/ca-bundle.crl";
    cfg.verifyCache = cache;
    std::string error;
    auto ctx = tls::TlsContext::create(cfg, error);
    if (!ctx) {
        std::fprintf(stderr, "handshake_cpu: %s\n", error.c_str());
        std::exit(1);
    }
    return ctx;
}

// Median server µs per handshake over `count` on `off` and on `on`, interleaved (one each in
// turn, so a load change on the machine hits both alike); handshake i presents ids[i] if given.
std::pair<double, double> run(SSL_CTX* off, SSL_CTX* on, SSL_CTX* client, int count,
                              const std::vector<Identity>* ids) {
    std::vector<int64_t> a, b;
    for (int i = 0; i < count; ++i) {
        const Identity* id = ids ? &(*ids)[static_cast<size_t>(i)] : nullptr;
        const int64_t x = oneHandshake(off, client, id);
        const int64_t y = oneHandshake(on, client, id);
        if (x < 0 || y < 0) {
            std::fprintf(stderr, "handshake_cpu: handshake %d failed\n", i);
            std::exit(1);
        }
        a.push_back(x);
        b.push_back(y);
    }
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    return {static_cast<double>(a[a.size() / 2]) / 1000.0,
            static_cast<double>(b[b.size() / 2]) / 1000.0};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: handshake_cpu CERTDIR [COUNT] [FLEET.pem]\n");
        return 2;
    }
    const std::string dir = argv[1];
    const int count = argc > 2 ? std::max(1, std::atoi(argv[2])) : 500;
    std::vector<Identity> fleet;
    if (argc > 3) fleet = readIdentities(argv[3]);

    SSL_CTX* known = clientContext(dir, "device1.pem", "device1.key");
    SSL_CTX* chain = clientContext(dir, "device3-chain.pem", "device3.key");
    SSL_CTX* bare = clientContext(dir, "", "");
    std::printf(
        "server CPU per full TLS 1.3 mTLS handshake, median of %d (µs, thread CPU "
        "time of the TlsSession calls only)\n",
        count);
    std::printf(
        "| shape | verify_cache off | verify_cache on | on ÷ off |\n|---|---:|---:|---:|\n");
    auto row = [&](const char* name, SSL_CTX* client, const std::vector<Identity>* ids) {
        // Fresh contexts per shape: the cache starts empty, as after a start or a reload.
        auto off = server(dir, false);
        auto on = server(dir, true);
        // Warm-up without the cache (allocator, OpenSSL's tables); the fleet's devices stay
        // unseen by `on`.
        for (int i = 0; i < 20; ++i)
            oneHandshake(off->native(), client, ids ? &(*ids)[0] : nullptr);
        const auto [a, b] = run(off->native(), on->native(), client, count, ids);
        std::printf("| %s | %.0f | %.0f | %.2f |\n", name, a, b, b / a);
    };
    row("known device (device1, no ticket)", known, nullptr);
    row("known device under an intermediate (device3 + chain)", chain, nullptr);
    if (static_cast<int>(fleet.size()) >= count) {
        row("a distinct device per handshake (fleet)", bare, &fleet);
    } else if (!fleet.empty()) {
        std::printf("(fleet: %zu devices < COUNT, skipped)\n", fleet.size());
    }
    const auto st = tls::VerifiedChainCache::processWide().stats();
    std::printf("cache: %llu hits, %llu misses\n", static_cast<unsigned long long>(st.hits),
                static_cast<unsigned long long>(st.misses));
    SSL_CTX_free(known);
    SSL_CTX_free(chain);
    SSL_CTX_free(bare);
    for (auto& id : fleet) {
        X509_free(id.cert);
        EVP_PKEY_free(id.key);
    }
    return 0;
}
