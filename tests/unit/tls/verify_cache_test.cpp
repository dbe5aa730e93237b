// The verified-chain cache (VerifiedChainCache + CachedVerify): LRU / expiry on a fake clock,
// and through real handshakes every way an entry must stop counting — a CRL reload that
// revokes a cached chain, a CA change, expiry, another intermediate — and that a refused chain
// is never stored.
#include <openssl/x509_vfy.h>

#include <catch2/catch.hpp>

#include "gateway/tls/CachedVerify.h"
#include "gateway/tls/CertIdentity.h"
#include "gateway/tls/VerifiedChainCache.h"
#include "tests/unit/tls/TlsTestUtil.h"

using namespace moat::tls;
using namespace moat::tls::test;
namespace config = moat::config;
using Status = TlsSession::Status;
using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

namespace {

VerifiedChainCache::Key key(uint64_t generation, uint8_t tag) {
    VerifiedChainCache::Key k;
    k.generation = generation;
    k.chain.fill(tag);
    return k;
}

const Clock::time_point t0 = Clock::time_point(1'700'000'000s);

// One handshake of `client` against `server`; the server's status.
Status connect(TlsContext& server, SSL_CTX* client, long* verify = nullptr,
               std::string* cn = nullptr) {
    Client c(client);
    TlsSession s(server.native());
    const Status st = pumpHandshake(c, s);
    if (verify) *verify = s.verifyResult();
    if (cn && s.peerCertificate()) *cn = inspectCertificate(s.peerCertificate()).subjectCn;
    return st;
}

std::shared_ptr<TlsContext> server(VerifiedChainCache& cache, const std::string& crl = "",
                                   const std::string& clientCa = "ca.pem") {
    config::TlsConfig cfg = serverConfig(true, crl);
    cfg.clientCa = certPath(clientCa);
    std::string error;
    auto ctx = TlsContext::create(cfg, error, cache);
    INFO(error);
    REQUIRE(ctx);
    REQUIRE(ctx->trustGeneration() != 0);
    return ctx;
}

X509Ptr readCert(const std::string& name) {
    std::string error;
    auto certs = readCertificates(certPath(name), error);
    INFO(error);
    REQUIRE(certs.size() == 1);
    return std::move(certs.front());
}

// A client presenting `leaf` (with its key) and exactly `extra` as its chain.
SslCtxPtr clientWithChain(const std::string& leaf, const std::vector<std::string>& extra) {
    SslCtxPtr ctx = makeClientCtx("");
    REQUIRE(SSL_CTX_use_certificate_file(ctx.get(), certPath(leaf + ".pem").c_str(),
                                         SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), certPath(leaf + ".key").c_str(),
                                        SSL_FILETYPE_PEM) == 1);
    for (const std::string& e : extra) {
        X509Ptr c = readCert(e + ".pem");
        REQUIRE(SSL_CTX_add1_chain_cert(ctx.get(), c.get()) == 1);
    }
    // Send exactly that chain: no completion from the client's own store.
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_NO_AUTO_CHAIN);
    return ctx;
}

}  // namespace

TEST_CASE("cache: hit, miss, generations and chains kept apart") {
    VerifiedChainCache cache(8);
    CHECK_FALSE(cache.lookup(key(1, 1), t0));
    cache.insert(key(1, 1), t0 - 1h, t0 + 1h, t0);
    CHECK(cache.lookup(key(1, 1), t0));
    CHECK_FALSE(cache.lookup(key(2, 1), t0));  // same chain, another trust generation
    CHECK_FALSE(cache.lookup(key(1, 2), t0));  // same generation, another chain
    auto s = cache.stats();
    CHECK(s.hits == 1);
    CHECK(s.misses == 3);
    CHECK(s.size == 1);
}

TEST_CASE("cache: an entry is valid in [notBefore, expires) only") {
    VerifiedChainCache cache(8);
    cache.insert(key(1, 1), t0 - 1h, t0 + 1h, t0);
    CHECK(cache.lookup(key(1, 1), t0 + 1h - 1s));
    CHECK_FALSE(cache.lookup(key(1, 1), t0 + 1h));  // expired: dropped
    CHECK(cache.stats().size == 0);
    CHECK(cache.stats().expired == 1);
    CHECK_FALSE(cache.lookup(key(1, 1), t0));  // gone for good, not revived

    cache.insert(key(1, 2), t0 - 1h, t0 + 1h, t0);
    CHECK_FALSE(cache.lookup(key(1, 2), t0 - 2h));  // clock stepped back before notBefore
    // A window that does not contain now is not stored at all.
    cache.insert(key(1, 3), t0 - 2h, t0 - 1h, t0);
    cache.insert(key(1, 4), t0 + 1h, t0 + 2h, t0);
    CHECK(cache.stats().size == 0);
}

TEST_CASE("cache: bounded, least recently used evicted first") {
    VerifiedChainCache cache(3);
    for (uint8_t i = 1; i <= 3; ++i) cache.insert(key(1, i), t0 - 1h, t0 + 1h, t0);
    CHECK(cache.lookup(key(1, 1), t0));             // 1 is now the most recent
    cache.insert(key(1, 4), t0 - 1h, t0 + 1h, t0);  // evicts 2
    CHECK(cache.stats().size == 3);
    CHECK(cache.stats().evictions == 1);
    CHECK_FALSE(cache.lookup(key(1, 2), t0));
    CHECK(cache.lookup(key(1, 1), t0));
    CHECK(cache.lookup(key(1, 3), t0));
    CHECK(cache.lookup(key(1, 4), t0));

    VerifiedChainCache none(0);
    none.insert(key(1, 1), t0 - 1h, t0 + 1h, t0);
    CHECK(none.stats().size == 0);
}

TEST_CASE("cache: dropGeneration forgets one generation only") {
    VerifiedChainCache cache(8);
    cache.insert(key(1, 1), t0 - 1h, t0 + 1h, t0);
    cache.insert(key(2, 1), t0 - 1h, t0 + 1h, t0);
    cache.dropGeneration(1);
    CHECK_FALSE(cache.lookup(key(1, 1), t0));
    CHECK(cache.lookup(key(2, 1), t0));
}

TEST_CASE("handshakes: a known chain skips verification, the result is the same") {
    VerifiedChainCache cache(16);
    auto srv = server(cache);
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        SslCtxPtr cctx = makeClientCtx("device1", version);
        const auto before = cache.stats();
        for (int i = 0; i < 3; ++i) {
            long verify = -1;
            std::string cn;
            REQUIRE(connect(*srv, cctx.get(), &verify, &cn) == Status::Ok);
            CHECK(verify == X509_V_OK);
            CHECK(cn == "device1");  // identity still comes from the peer certificate
        }
        const auto after = cache.stats();
        // TLS 1.2 and 1.3 present the same chain: the second version hits from the start.
        CHECK(after.hits - before.hits == (version == TLS1_2_VERSION ? 2u : 3u));
    }
    CHECK(cache.stats().inserts == 1);
    CHECK(cache.stats().size == 1);
}

TEST_CASE("handshakes: a CRL reload revokes a cached chain") {
    VerifiedChainCache cache(16);
    SslCtxPtr cctx = makeClientCtx("revoked");
    // Before: the CRL in force lists nothing, so revoked1 verifies and is cached.
    auto before = server(cache, "ca-empty.crl");
    REQUIRE(connect(*before, cctx.get()) == Status::Ok);
    REQUIRE(connect(*before, cctx.get()) == Status::Ok);
    REQUIRE(cache.stats().hits == 1);
    // The reload: the new CRL lists revoked1. The old context (still alive, as it is while
    // sessions made from it live) keeps its entry; the new one must not see it.
    auto after = server(cache, "ca.crl");
    CHECK(after->trustGeneration() != before->trustGeneration());
    const uint64_t hits = cache.stats().hits;
    for (int i = 0; i < 2; ++i) {
        long verify = -1;
        CHECK(connect(*after, cctx.get(), &verify) == Status::Error);
        CHECK(verify == X509_V_ERR_CERT_REVOKED);
    }
    CHECK(cache.stats().hits == hits);
}

TEST_CASE("handshakes: a refused chain is never cached, so a revoked cert can never hit") {
    VerifiedChainCache cache(16);
    auto srv = server(cache, "ca.crl");
    for (const char* name : {"revoked", "expired", "noclientauth", "rogue"}) {
        CAPTURE(name);
        SslCtxPtr cctx = makeClientCtx(name);
        for (int i = 0; i < 2; ++i) CHECK(connect(*srv, cctx.get()) == Status::Error);
    }
    CHECK(cache.stats().inserts == 0);
    CHECK(cache.stats().hits == 0);
    CHECK(cache.stats().size == 0);
}

TEST_CASE("handshakes: a CA change refuses a chain cached under the old CA") {
    VerifiedChainCache cache(16);
    SslCtxPtr device1 = makeClientCtx("device1");
    auto oldCa = server(cache, "", "ca.pem");
    REQUIRE(connect(*oldCa, device1.get()) == Status::Ok);
    REQUIRE(cache.stats().size == 1);
    // client_ca now names only the other CA: device1's issuer is no longer trusted.
    auto newCa = server(cache, "", "rogue-ca.pem");
    long verify = -1;
    CHECK(connect(*newCa, device1.get(), &verify) == Status::Error);
    // The client sends its root too: "self-signed certificate in chain" (not a trusted one).
    CHECK(verify == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
    CHECK(cache.stats().hits == 0);
    // And the reverse: a chain of the new CA with the same subject (CN=device1) is another
    // chain, refused by the old context whatever device1's entry says.
    SslCtxPtr rogue = makeClientCtx("rogue");
    CHECK(connect(*oldCa, rogue.get()) == Status::Error);
    CHECK(cache.stats().hits == 0);
}

TEST_CASE("handshakes: the same leaf with a different intermediate list is verified again") {
    VerifiedChainCache cache(16);
    auto srv = server(cache, "ca-bundle.crl");
    SslCtxPtr good = clientWithChain("device3", {"intermediate"});
    REQUIRE(connect(*srv, good.get()) == Status::Ok);
    REQUIRE(connect(*srv, good.get()) == Status::Ok);
    REQUIRE(cache.stats().hits == 1);
    // Leaf alone: no path to the root, refused although the leaf's chain is cached.
    SslCtxPtr bare = clientWithChain("device3", {});
    long verify = -1;
    CHECK(connect(*srv, bare.get(), &verify) == Status::Error);
    CHECK(verify == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    // Another (wrong) certificate in the intermediate's place: refused too.
    SslCtxPtr wrong = clientWithChain("device3", {"device1"});
    CHECK(connect(*srv, wrong.get()) == Status::Error);
    CHECK(cache.stats().hits == 1);
    // An extra certificate after the right intermediate verifies, as a new entry.
    SslCtxPtr extra = clientWithChain("device3", {"intermediate", "device2"});
    CHECK(connect(*srv, extra.get()) == Status::Ok);
    CHECK(cache.stats().hits == 1);
    CHECK(cache.stats().inserts == 2);
}

TEST_CASE("entries expire at the chain's earliest notAfter and the CRLs' nextUpdate") {
    X509Ptr leaf = readCert("device1.pem");
    X509Ptr ca = readCert("ca.pem");
    STACK_OF(X509)* chain = sk_X509_new_null();
    sk_X509_push(chain, leaf.get());
    sk_X509_push(chain, ca.get());
    const auto leafUntil = *toTimePoint(X509_get0_notAfter(leaf.get()));
    const auto caUntil = *toTimePoint(X509_get0_notAfter(ca.get()));
    const auto leafFrom = *toTimePoint(X509_get0_notBefore(leaf.get()));

    auto w = chainValidity(chain, std::nullopt);
    REQUIRE(w);
    CHECK(w->expires == std::min(leafUntil, caUntil));
    CHECK(w->notBefore >= leafFrom);

    // With CRLs: the window of the CRLs in the store bounds it.
    VerifiedChainCache cache(16);
    auto srv = server(cache, "ca.crl");
    auto crl = crlValidity(SSL_CTX_get_cert_store(srv->native()));
    REQUIRE(crl);
    std::string error;
    auto next = crlNextUpdate(certPath("ca.crl"), error);
    REQUIRE(next);
    CHECK(crl->expires == *next);
    auto bounded = chainValidity(chain, crl);
    REQUIRE(bounded);
    CHECK(bounded->expires == std::min(*next, w->expires));
    CHECK(bounded->notBefore >= crl->notBefore);
    // A CRL due before the certificates expire bounds the entry (the test CRL lives longer
    // than the leaf, so this one is made up).
    const ValidityWindow soon{crl->notBefore, leafUntil - 24h};
    bounded = chainValidity(chain, soon);
    REQUIRE(bounded);
    CHECK(bounded->expires == leafUntil - 24h);
    sk_X509_free(chain);

    // On the fake clock, the entry made from that window stops hitting at nextUpdate.
    VerifiedChainCache fake(4);
    fake.insert(key(1, 1), bounded->notBefore, bounded->expires, bounded->expires - 1s);
    CHECK(fake.lookup(key(1, 1), bounded->expires - 1s));
    CHECK_FALSE(fake.lookup(key(1, 1), bounded->expires));
}

TEST_CASE("a store without CRLs has no CRL window; verify_cache off installs nothing") {
    VerifiedChainCache cache(16);
    auto srv = server(cache);
    CHECK_FALSE(crlValidity(SSL_CTX_get_cert_store(srv->native())));

    config::TlsConfig cfg = serverConfig();
    cfg.verifyCache = false;
    std::string error;
    auto off = TlsContext::create(cfg, error, cache);
    REQUIRE(off);
    CHECK(off->trustGeneration() == 0);
    SslCtxPtr cctx = makeClientCtx("device1");
    CHECK(connect(*off, cctx.get()) == Status::Ok);
    CHECK(connect(*off, cctx.get()) == Status::Ok);
    CHECK(cache.stats().inserts == 0);
}

TEST_CASE("a freed context's entries leave the cache") {
    VerifiedChainCache cache(16);
    SslCtxPtr cctx = makeClientCtx("device1");
    {
        auto srv = server(cache);
        REQUIRE(connect(*srv, cctx.get()) == Status::Ok);
        CHECK(cache.stats().size == 1);
    }
    CHECK(cache.stats().size == 0);
}

TEST_CASE("optional client certificate: none presented, nothing cached, still accepted") {
    VerifiedChainCache cache(16);
    config::TlsConfig cfg = serverConfig(false);
    std::string error;
    auto srv = TlsContext::create(cfg, error, cache);
    REQUIRE(srv);
    SslCtxPtr anon = makeClientCtx("");
    CHECK(connect(*srv, anon.get()) == Status::Ok);
    CHECK(cache.stats().inserts == 0);
}
