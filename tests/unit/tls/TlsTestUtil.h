#pragma once
// A server TlsSession and a raw OpenSSL client connected in memory, plus the test PKI.

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "gateway/tls/Openssl.h"
#include "gateway/tls/TlsContext.h"
#include "gateway/tls/TlsSession.h"

namespace moat::tls::test {

// The PKI of tests/certs/gen_certs.sh, generated once per process into a temp dir.
const std::string& certDir();
std::string certPath(const std::string& name);

// Server config: server.pem/key, client_ca ca.pem, mTLS required unless told otherwise.
config::TlsConfig serverConfig(bool requireClientCert = true, const std::string& crl = "",
                               const std::string& minVersion = "1.2");
std::shared_ptr<TlsContext> makeServer(const config::TlsConfig& cfg);

// A client SSL_CTX trusting ca.pem, presenting `cert` (empty: none), limited to `maxVersion`
// (TLS1_2_VERSION / TLS1_3_VERSION, 0 = any).
SslCtxPtr makeClientCtx(const std::string& cert, int maxVersion = 0);

// The client end: an SSL over two memory BIOs.
class Client {
  public:
    explicit Client(SSL_CTX* ctx);
    SSL* ssl() const { return ssl_.get(); }
    // Ciphertext the client produced.
    std::vector<uint8_t> takeOutput();
    // Ciphertext from the server.
    void feed(const std::vector<uint8_t>& bytes);
    // Drives the handshake; 1 done, 0 wants more, -1 failed.
    int handshake();
    // All plaintext available; sets closed on close_notify.
    std::vector<uint8_t> readAll(bool* closed = nullptr);
    void write(const std::vector<uint8_t>& data);

  private:
    SslPtr ssl_;
    BIO* rbio_ = nullptr;  // owned by ssl_
    BIO* wbio_ = nullptr;
};

std::vector<uint8_t> takeAll(TlsSession& s);

// Runs the handshake to completion or failure. Returns the server's final status.
TlsSession::Status pumpHandshake(Client& c, TlsSession& s, int* clientResult = nullptr);

}  // namespace moat::tls::test
