// Handshakes: TLS 1.2 and 1.3, mTLS accepted and refused (rogue, expired, revoked, wrong
// purpose, missing), min_version, renegotiation refused.
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <catch2/catch.hpp>

#include "gateway/tls/Revocation.h"
#include "tests/unit/tls/TlsTestUtil.h"

using namespace moat::tls;
using namespace moat::tls::test;
using Status = TlsSession::Status;

TEST_CASE("mTLS handshake with device1, TLS 1.2 and 1.3") {
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        SslCtxPtr cctx = makeClientCtx("device1", version);
        Client c(cctx.get());
        TlsSession s(server->native());
        CHECK_FALSE(s.handshakeComplete());
        int cr = 0;
        REQUIRE(pumpHandshake(c, s, &cr) == Status::Ok);
        CHECK(cr == 1);
        CHECK(s.handshakeComplete());
        CHECK(std::string(s.protocolVersion()) ==
              (version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3"));
        CHECK(s.verifyResult() == X509_V_OK);
        REQUIRE(s.peerCertificate() != nullptr);
        CHECK(s.lastError().empty());
        CHECK_FALSE(s.sessionReused());
        // The negotiated cipher is AEAD with forward secrecy.
        const std::string cipher = s.cipherName();
        CHECK((cipher.find("GCM") != std::string::npos ||
               cipher.find("CHACHA20") != std::string::npos));
    }
}

TEST_CASE("intermediate-signed client with its chain") {
    auto server = makeServer(serverConfig(true, "ca-bundle.crl"));
    SslCtxPtr cctx = makeClientCtx("device3");
    Client c(cctx.get());
    TlsSession s(server->native());
    REQUIRE(pumpHandshake(c, s) == Status::Ok);
    CHECK(s.peerChain() != nullptr);
    CHECK(server->verifyClientCertificate(s.peerCertificate(), s.peerChain()) == X509_V_OK);
}

TEST_CASE("refused client certificates") {
    const struct {
        const char* cert;
        const char* crl;
        long verify;
        const char* error;
    } cases[] = {
        {"rogue", "", X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
         "unable to get local issuer certificate"},
        {"expired", "", X509_V_ERR_CERT_HAS_EXPIRED, "certificate has expired"},
        {"revoked", "ca.crl", X509_V_ERR_CERT_REVOKED, "certificate revoked"},
        {"noclientauth", "", X509_V_ERR_INVALID_PURPOSE, "certificate purpose"},
    };
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        for (const auto& k : cases) {
            CAPTURE(version, k.cert);
            auto server = makeServer(serverConfig(true, k.crl));
            SslCtxPtr cctx = makeClientCtx(k.cert, version);
            Client c(cctx.get());
            TlsSession s(server->native());
            REQUIRE(pumpHandshake(c, s) == Status::Error);
            CHECK_FALSE(s.handshakeComplete());
            CHECK(s.verifyResult() == k.verify);
            CHECK(s.lastError() == X509_verify_cert_error_string(k.verify));
            CHECK(s.lastError().find(k.error) != std::string::npos);
            // Sticky, and further input is ignored.
            const uint8_t junk[3] = {1, 2, 3};
            s.feed(junk, 3);
            CHECK(s.bufferedInput() == 0);
            CHECK(s.handshake() == Status::Error);
            std::vector<uint8_t> out;
            CHECK(s.read(out) == Status::Error);
            CHECK(out.empty());
        }
    }
}

TEST_CASE("device1 passes the CRL check; the same CRL refuses revoked") {
    auto server = makeServer(serverConfig(true, "ca.crl"));
    SslCtxPtr ok = makeClientCtx("device1");
    Client c(ok.get());
    TlsSession s(server->native());
    REQUIRE(pumpHandshake(c, s) == Status::Ok);
    // Re-verification after a reload holds live sessions to the CRL.
    CHECK(server->verifyClientCertificate(s.peerCertificate(), s.peerChain()) == X509_V_OK);
    std::string error;
    auto revoked = readCertificates(certPath("revoked.pem"), error);
    REQUIRE(revoked.size() == 1);
    CHECK(server->verifyClientCertificate(revoked[0].get(), nullptr) == X509_V_ERR_CERT_REVOKED);
    auto noCrl = makeServer(serverConfig(true));
    CHECK(noCrl->verifyClientCertificate(revoked[0].get(), nullptr) == X509_V_OK);
}

TEST_CASE("a missing client certificate: refused when required, accepted when optional") {
    SslCtxPtr cctx = makeClientCtx("");
    {
        auto server = makeServer(serverConfig(true));
        Client c(cctx.get());
        TlsSession s(server->native());
        REQUIRE(pumpHandshake(c, s) == Status::Error);
        CHECK(s.lastError().find("certificate") != std::string::npos);
    }
    {
        auto server = makeServer(serverConfig(false));
        Client c(cctx.get());
        TlsSession s(server->native());
        REQUIRE(pumpHandshake(c, s) == Status::Ok);
        CHECK(s.peerCertificate() == nullptr);
    }
    {
        // Optional, but a certificate that is presented must verify.
        auto server = makeServer(serverConfig(false));
        SslCtxPtr rogue = makeClientCtx("rogue");
        Client c(rogue.get());
        TlsSession s(server->native());
        REQUIRE(pumpHandshake(c, s) == Status::Error);
    }
}

TEST_CASE("min_version 1.3 refuses a TLS 1.2 client") {
    auto server = makeServer(serverConfig(true, "", "1.3"));
    SslCtxPtr cctx = makeClientCtx("device1", TLS1_2_VERSION);
    Client c(cctx.get());
    TlsSession s(server->native());
    REQUIRE(pumpHandshake(c, s) == Status::Error);
    CHECK_FALSE(s.lastError().empty());
}

TEST_CASE("garbage instead of a ClientHello fails cleanly") {
    auto server = makeServer(serverConfig());
    for (const std::string& junk :
         {std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 12),
          std::string("GET / HTTP/1.1\r\n\r\n"), std::string(64, '\xFF')}) {
        TlsSession s(server->native());
        s.feed(reinterpret_cast<const uint8_t*>(junk.data()), junk.size());
        CHECK(s.handshake() == Status::Error);
        CHECK_FALSE(s.lastError().empty());
    }
}

TEST_CASE("client-initiated renegotiation is refused") {
    auto server = makeServer(serverConfig());
    SslCtxPtr cctx = makeClientCtx("device1", TLS1_2_VERSION);
    Client c(cctx.get());
    TlsSession s(server->native());
    REQUIRE(pumpHandshake(c, s) == Status::Ok);
    REQUIRE(SSL_renegotiate(c.ssl()) == 1);
    c.handshake();  // sends a new ClientHello
    const std::vector<uint8_t> hello = c.takeOutput();
    REQUIRE_FALSE(hello.empty());
    s.feed(hello.data(), hello.size());
    std::vector<uint8_t> plain;
    const Status st = s.read(plain);
    c.feed(takeAll(s));
    CHECK(plain.empty());
    // The server either answers no_renegotiation or fails the connection; it never completes a
    // second handshake.
    CHECK((st == Status::WantMore || st == Status::Error));
    CHECK(c.handshake() != 1);
}

TEST_CASE("a dribbled handshake costs no SSL object until a whole record is there") {
    // Slowloris on TLS: the gateway holds what the client sent, nothing more, until a
    // complete record arrives; then the handshake goes on as usual.
    auto server = makeServer(serverConfig());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        SslCtxPtr cctx = makeClientCtx("device1", version);
        Client c(cctx.get());
        TlsSession s(server->native());
        CHECK(s.native() == nullptr);  // accepted, silent: no SSL yet
        REQUIRE(c.handshake() == 0);
        const std::vector<uint8_t> hello = c.takeOutput();
        REQUIRE(hello.size() > 6);
        for (size_t i = 0; i + 1 < hello.size(); ++i) {
            s.feed(&hello[i], 1);
            REQUIRE(s.handshake() == Status::WantMore);
            REQUIRE(s.native() == nullptr);
            REQUIRE(s.pendingOutput() == 0);
        }
        CHECK(s.bufferedInput() == hello.size() - 1);
        s.feed(&hello.back(), 1);
        CHECK(s.handshake() == Status::WantMore);  // ServerHello sent, waiting for the client
        CHECK(s.native() != nullptr);
        CHECK(s.pendingOutput() > 0);
        c.feed(takeAll(s));
        REQUIRE(pumpHandshake(c, s) == Status::Ok);
        CHECK(s.handshakeComplete());
    }
}

TEST_CASE("input that is not TLS records is refused at once, not held") {
    auto server = makeServer(serverConfig());
    TlsSession s(server->native());
    const std::string http = "GET / HTTP/1.1\r\n";  // 'G' is no TLS record type
    s.feed(reinterpret_cast<const uint8_t*>(http.data()), http.size());
    CHECK(s.handshake() == Status::Error);
    // A record header announcing more than TLS allows: refused too.
    TlsSession big(server->native());
    const uint8_t header[] = {0x16, 0x03, 0x01, 0xFF, 0xFF};
    big.feed(header, sizeof header);
    CHECK(big.handshake() == Status::Error);
}

TEST_CASE("key exchange: FFDHE-only clients are refused, X25519 works, groups configurable") {
    for (const char* groups : {"ffdhe8192", "ffdhe2048"}) {
        CAPTURE(groups);
        auto server = makeServer(serverConfig(true));
        SslCtxPtr cctx = makeClientCtx("device1", TLS1_3_VERSION);
        REQUIRE(SSL_CTX_set1_groups_list(cctx.get(), groups) == 1);
        Client c(cctx.get());
        TlsSession s(server->native());
        CHECK(pumpHandshake(c, s) == Status::Error);
        CHECK(s.verifyResult() == X509_V_OK);  // not a certificate problem
        CHECK(s.handshakeStarted());
    }
    auto server = makeServer(serverConfig(true));
    SslCtxPtr cctx = makeClientCtx("device1", TLS1_3_VERSION);
    REQUIRE(SSL_CTX_set1_groups_list(cctx.get(), "X25519") == 1);
    Client c(cctx.get());
    TlsSession s(server->native());
    CHECK(pumpHandshake(c, s) == Status::Ok);

    // An operator may opt in (moat audit flags it).
    auto cfg = serverConfig(true);
    cfg.groups = "X25519:ffdhe2048";
    auto opted = makeServer(cfg);
    SslCtxPtr dh = makeClientCtx("device1", TLS1_3_VERSION);
    REQUIRE(SSL_CTX_set1_groups_list(dh.get(), "ffdhe2048") == 1);
    Client c2(dh.get());
    TlsSession s2(opted->native());
    CHECK(pumpHandshake(c2, s2) == Status::Ok);

    cfg.groups = "X25519:nonsense";
    std::string error;
    CHECK(TlsContext::create(cfg, error) == nullptr);
    CHECK(error.find("tls: groups \"X25519:nonsense\"") == 0);
}

TEST_CASE("revocation covers the chain; a CRL file must cover every CA of client_ca") {
    CHECK(revocationFlags() == (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL));
    auto server = makeServer(serverConfig(true, "ca-bundle.crl"));
    CHECK((X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(server->native())) &
           X509_V_FLAG_CRL_CHECK_ALL) != 0);

    // client_ca = ca.pem + intermediate.pem; the CRL file holds only ca.pem's CRL.
    auto cfg = serverConfig(true, "ca.crl");
    std::string bundle = certDir() + "/ca-and-intermediate.pem";
    {
        std::string error;
        auto a = readCertificates(certPath("ca.pem"), error);
        auto b = readCertificates(certPath("intermediate.pem"), error);
        REQUIRE((a.size() == 1 && b.size() == 1));
        BIO* out = BIO_new_file(bundle.c_str(), "w");
        REQUIRE(out != nullptr);
        PEM_write_bio_X509(out, a[0].get());
        PEM_write_bio_X509(out, b[0].get());
        BIO_free(out);
        std::vector<X509Ptr> cas;
        cas.push_back(std::move(a[0]));
        cas.push_back(std::move(b[0]));
        auto intermediates = intermediateCas(cas);
        REQUIRE(intermediates.size() == 1);
        CHECK(intermediates[0].find("ntermediate") != std::string::npos);
    }
    cfg.clientCa = bundle;
    std::string error;
    CHECK(TlsContext::create(cfg, error) == nullptr);
    CHECK(error.find("no CRL issued by client_ca CA") != std::string::npos);
    cfg.crl = certPath("ca-bundle.crl");
    error.clear();
    CHECK(TlsContext::create(cfg, error) != nullptr);
    CHECK(error.empty());
}

TEST_CASE("a silent connection has not started a handshake") {
    auto server = makeServer(serverConfig(true));
    TlsSession s(server->native());
    CHECK_FALSE(s.handshakeStarted());
    const uint8_t partial[3] = {0x16, 0x03, 0x01};
    s.feed(partial, sizeof partial);
    CHECK(s.handshake() == Status::WantMore);
    CHECK(s.handshakeStarted());
}
