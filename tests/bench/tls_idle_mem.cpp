// tls_idle_mem: what one idle, authenticated TLS session costs the gateway's TLS layer, split
// into OpenSSL's own allocations and the rest (Moat's TlsSession and its buffers) — the
// per-connection breakdown issue 26 asks for (not a test; no thresholds).
//
// N server TlsSessions complete a full TLS 1.3 mTLS handshake with in-memory OpenSSL clients
// (then freed), exchange one small record each way (as CONNECT / CONNACK), drain and release
// their buffers as an idle connection does; the heap still held per session is then read
// from OpenSSL's allocator hooks (bytes OpenSSL holds) and from glibc (bytes in use overall).
// The socket, libuv handles, ClientConnection and the broker-side connection are not here:
// the end-to-end figure is `run.sh --only idle`.
//
//   ./tls_idle_mem CERTDIR [N]      (CERTDIR: tests/certs/gen_certs.sh output)
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gateway/tls/TlsContext.h"
#include "gateway/tls/TlsSession.h"

using namespace moat;

namespace {

// OpenSSL's live bytes, through its allocator hooks (a size header before each block): what
// it asked for, how many blocks, and what those blocks take in glibc's heap (usable size + the
// chunk header), so that the rest of the heap growth is attributed to Moat exactly.
std::atomic<int64_t> opensslLive{0}, opensslBlocks{0}, opensslHeap{0};
constexpr size_t kHeader = 16;

int64_t chunkBytes(void* p) {
    return static_cast<int64_t>(malloc_usable_size(p)) + 8;
}

// Live bytes per allocation site (OpenSSL source file:line), for the top-sites table. The
// tool is single-threaded; the site index sits in the second word of the header.
struct Site {
    const char* file;
    int line;
    int64_t live = 0;
    int64_t blocks = 0;
};
std::vector<Site>* sites = nullptr;

uint64_t siteOf(const char* file, int line) {
    if (!sites) sites = new std::vector<Site>();
    for (size_t i = 0; i < sites->size(); ++i) {
        if ((*sites)[i].line == line && (*sites)[i].file == file) return i;
    }
    sites->push_back(Site{file, line});
    return sites->size() - 1;
}
void account(unsigned char* p, int64_t bytes, int64_t blocks) {
    uint64_t site;
    std::memcpy(&site, p + 8, sizeof site);
    (*sites)[site].live += bytes;
    (*sites)[site].blocks += blocks;
}

void* countedMalloc(size_t n, const char* file, int line) {
    auto* p = static_cast<unsigned char*>(std::malloc(n + kHeader));
    if (!p) return nullptr;
    std::memcpy(p, &n, sizeof n);
    const uint64_t site = siteOf(file, line);
    std::memcpy(p + 8, &site, sizeof site);
    account(p, static_cast<int64_t>(n), 1);
    opensslLive += static_cast<int64_t>(n);
    opensslBlocks += 1;
    opensslHeap += chunkBytes(p);
    return p + kHeader;
}
void countedFree(void* q, const char*, int) {
    if (!q) return;
    auto* p = static_cast<unsigned char*>(q) - kHeader;
    size_t n;
    std::memcpy(&n, p, sizeof n);
    account(p, -static_cast<int64_t>(n), -1);
    opensslLive -= static_cast<int64_t>(n);
    opensslBlocks -= 1;
    opensslHeap -= chunkBytes(p);
    std::free(p);
}
void* countedRealloc(void* q, size_t n, const char* f, int l) {
    if (!q) return countedMalloc(n, f, l);
    if (n == 0) {
        countedFree(q, f, l);
        return nullptr;
    }
    auto* p = static_cast<unsigned char*>(q) - kHeader;
    size_t old;
    std::memcpy(&old, p, sizeof old);
    const int64_t oldChunk = chunkBytes(p);
    auto* r = static_cast<unsigned char*>(std::realloc(p, n + kHeader));
    if (!r) return nullptr;
    opensslHeap += chunkBytes(r) - oldChunk;
    std::memcpy(r, &n, sizeof n);
    account(r, static_cast<int64_t>(n) - static_cast<int64_t>(old), 0);
    opensslLive += static_cast<int64_t>(n) - static_cast<int64_t>(old);
    return r + kHeader;
}

int64_t heapInUse() {
    struct mallinfo2 m = mallinfo2();
    return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

struct Pair {
    SSL* client = nullptr;
    BIO* rbio = nullptr;  // client's input (owned by client)
    BIO* wbio = nullptr;
};

void pump(Pair& c, tls::TlsSession& s) {
    std::vector<uint8_t> buf(64 * 1024);
    for (int round = 0; round < 20; ++round) {
        int n = BIO_read(c.wbio, buf.data(), static_cast<int>(buf.size()));
        if (n > 0) s.feed(buf.data(), static_cast<size_t>(n));
        if (!s.handshakeComplete()) s.handshake();
        std::vector<uint8_t> plain;
        if (s.handshakeComplete()) s.read(plain);
        size_t out = s.takeOutput(buf.data(), buf.size());
        if (out) BIO_write(c.rbio, buf.data(), static_cast<int>(out));
        int r = SSL_do_handshake(c.client);
        if (r == 1) {
            char tmp[256];
            while (SSL_read(c.client, tmp, sizeof tmp) > 0) {
            }
        }
        ERR_clear_error();
        if (n <= 0 && out == 0 && s.handshakeComplete() && r == 1) return;
    }
}

}  // namespace

int main(int argc, char** argv) {
    // Before anything else touches OpenSSL.
    if (!CRYPTO_set_mem_functions(countedMalloc, countedRealloc, countedFree)) {
        std::fprintf(stderr, "tls_idle_mem: cannot hook OpenSSL's allocator\n");
        return 1;
    }
    if (argc < 2) {
        std::fprintf(stderr, "usage: tls_idle_mem CERTDIR [N]\n");
        return 2;
    }
    const std::string dir = argv[1];
    const int count = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1000;
    config::TlsConfig cfg;
    cfg.cert = dir + "/server.pem";
    cfg.key = dir + "/server.key";
    cfg.clientCa = dir + "/ca.pem";
    std::string error;
    auto server = tls::TlsContext::create(cfg, error);
    if (!server) {
        std::fprintf(stderr, "tls_idle_mem: %s\n", error.c_str());
        return 1;
    }
    SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_load_verify_locations(cctx, (dir + "/ca.pem").c_str(), nullptr);
    SSL_CTX_use_certificate_chain_file(cctx, (dir + "/device1.pem").c_str());
    SSL_CTX_use_PrivateKey_file(cctx, (dir + "/device1.key").c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);

    std::vector<std::unique_ptr<tls::TlsSession>> sessions;
    sessions.reserve(static_cast<size_t>(count));
    auto one = [&] {
        Pair c;
        c.client = SSL_new(cctx);
        c.rbio = BIO_new(BIO_s_mem());
        c.wbio = BIO_new(BIO_s_mem());
        BIO_set_mem_eof_return(c.rbio, -1);
        SSL_set_bio(c.client, c.rbio, c.wbio);
        SSL_set_connect_state(c.client);
        auto s = std::make_unique<tls::TlsSession>(server->native());
        pump(c, *s);
        const char hello[] = "0123456789abcdef";  // a CONNECT-sized record each way
        SSL_write(c.client, hello, sizeof hello);
        pump(c, *s);
        s->write(reinterpret_cast<const uint8_t*>(hello), 4);
        pump(c, *s);
        s->releaseIdleBuffers();
        SSL_free(c.client);
        return s;
    };
    for (int i = 0; i < 20; ++i) one();  // warm-up: OpenSSL's lazily built tables
    std::vector<Site> sites0 = *sites;
    const int64_t ossl0 = opensslLive.load(), blocks0 = opensslBlocks.load(),
                  osslHeap0 = opensslHeap.load(), heap0 = heapInUse();
    for (int i = 0; i < count; ++i) {
        sessions.push_back(one());
        if (!sessions.back()->handshakeComplete()) {
            std::fprintf(stderr, "tls_idle_mem: handshake %d failed: %s\n", i,
                         sessions.back()->lastError().c_str());
            return 1;
        }
    }
    const double n = count;
    const double ossl = static_cast<double>(opensslLive.load() - ossl0) / n;
    const double blocks = static_cast<double>(opensslBlocks.load() - blocks0) / n;
    const double osslHeap = static_cast<double>(opensslHeap.load() - osslHeap0) / n;
    const double heap = static_cast<double>(heapInUse() - heap0) / n;
    // The hook's own header is not OpenSSL's cost: take it out of OpenSSL's heap share.
    const double hook = blocks * static_cast<double>(kHeader);
    std::printf("idle TLS 1.3 mTLS session, server side, mean of %d (bytes of heap in use)\n",
                count);
    std::printf("| part | bytes / session |\n|---|---:|\n");
    std::printf("| OpenSSL, requested (SSL object, session, peer certificate, ...) | %.0f |\n",
                ossl);
    std::printf("| OpenSSL, in the heap (%.0f blocks: + malloc rounding and headers) | %.0f |\n",
                blocks, osslHeap - hook);
    std::printf("| Moat's TlsSession and its buffers, in the heap | %.0f |\n", heap - osslHeap);
    std::printf("| total (without this tool's %.0f bytes of hook headers) | %.0f |\n", hook,
                heap - hook);
    // Where OpenSSL's bytes are: the sites holding the most per session.
    std::vector<std::pair<double, size_t>> top;
    for (size_t i = 0; i < sites->size(); ++i) {
        const int64_t before = i < sites0.size() ? sites0[i].live : 0;
        const double per = static_cast<double>((*sites)[i].live - before) / n;
        if (per >= 64) top.push_back({per, i});
    }
    std::sort(top.rbegin(), top.rend());
    std::printf("\nOpenSSL's bytes per session by allocation site (>= 64 B):\n");
    std::printf("| site | bytes | blocks |\n|---|---:|---:|\n");
    for (const auto& [per, i] : top) {
        const Site& st = (*sites)[i];
        const int64_t b0 = i < sites0.size() ? sites0[i].blocks : 0;
        const char* file = st.file ? std::strrchr(st.file, '/') : nullptr;
        std::printf("| %s:%d | %.0f | %.1f |\n", file ? file + 1 : (st.file ? st.file : "?"),
                    st.line, per, static_cast<double>(st.blocks - b0) / n);
    }
    sessions.clear();
    SSL_CTX_free(cctx);
    return 0;
}
