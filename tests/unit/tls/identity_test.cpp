// identityFromCert on real handshake peers and on CertInfo values.
#include <catch2/catch.hpp>

#include "gateway/tls/CertIdentity.h"
#include "tests/unit/tls/TlsTestUtil.h"

using namespace moat;
using namespace moat::tls;
using namespace moat::tls::test;
using config::IdentityFrom;

namespace {
CertInfo peerInfo(const std::string& cert) {
    auto server = makeServer(serverConfig());
    SslCtxPtr cctx = makeClientCtx(cert);
    Client c(cctx.get());
    TlsSession s(server->native());
    REQUIRE(pumpHandshake(c, s) == TlsSession::Status::Ok);
    REQUIRE(s.peerCertificate() != nullptr);
    return inspectCertificate(s.peerCertificate());
}
}  // namespace

TEST_CASE("identity of device1 from every source") {
    const CertInfo info = peerInfo("device1");
    CHECK(info.subjectCn == "device1");
    CHECK_FALSE(info.multipleCn);
    CHECK(info.subject == "CN=device1,O=Moat");
    CHECK(info.issuer == "CN=Moat Dev CA,O=Moat");
    CHECK_FALSE(info.serialHex.empty());
    CHECK(info.notBefore < info.notAfter);
    CHECK(identityFromCert(info, IdentityFrom::CertCn) == "device1");
    CHECK(identityFromCert(info, IdentityFrom::CertSanDns) == "device1.devices.example");
    CHECK(identityFromCert(info, IdentityFrom::CertSanUri) == "spiffe://moat/device1");
    CHECK(identityFromCert(info, IdentityFrom::CertSanEmail) == "device1@example.com");
}

TEST_CASE("a certificate without SANs has only a CN identity") {
    const CertInfo info = peerInfo("device2");
    CHECK(identityFromCert(info, IdentityFrom::CertCn) == "device2");
    CHECK_FALSE(identityFromCert(info, IdentityFrom::CertSanDns));
    CHECK_FALSE(identityFromCert(info, IdentityFrom::CertSanUri));
    CHECK_FALSE(identityFromCert(info, IdentityFrom::CertSanEmail));
    CHECK(identityFromCert(peerInfo("operator1"), IdentityFrom::CertCn) == "ops-console");
}

TEST_CASE("identities that could pose as another are refused") {
    CertInfo info;
    info.subjectCn = "dev";
    CHECK(identityFromCert(info, IdentityFrom::CertCn) == "dev");
    info.multipleCn = true;
    CHECK_FALSE(identityFromCert(info, IdentityFrom::CertCn));
    info.multipleCn = false;
    for (const std::string& bad :
         {std::string(""), std::string("a\0b", 3), std::string("a\nb"), std::string("a\x7f"),
          std::string("\xC3\x28"), std::string("\xED\xA0\x80")}) {
        info.subjectCn = bad;
        CHECK_FALSE(identityFromCert(info, IdentityFrom::CertCn));
        CHECK_FALSE(isAcceptableIdentity(bad));
    }
    // The first SAN decides, even when a later one would be acceptable.
    info.sanDns = {std::string("x\0y", 3), "good.example"};
    CHECK_FALSE(identityFromCert(info, IdentityFrom::CertSanDns));
    info.sanDns = {"first.example", "second.example"};
    CHECK(identityFromCert(info, IdentityFrom::CertSanDns) == "first.example");
    CHECK(isAcceptableIdentity("caf\xC3\xA9"));
}

TEST_CASE("certificate and CRL files") {
    std::string error;
    auto info = loadCertificateFile(certPath("device1.pem"), error);
    REQUIRE(info);
    CHECK(info->subjectCn == "device1");
    CHECK(info->sanUri == std::vector<std::string>{"spiffe://moat/device1"});
    CHECK_FALSE(loadCertificateFile(certPath("nope.pem"), error));
    CHECK(error.find("nope.pem") != std::string::npos);
    CHECK(crlNextUpdate(certPath("ca.crl"), error));
    auto stale = crlNextUpdate(certPath("ca-stale.crl"), error);
    REQUIRE(stale);
    CHECK(*stale < std::chrono::system_clock::now());
    CHECK_FALSE(crlNextUpdate(certPath("ca.pem"), error));
}
