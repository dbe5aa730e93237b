#pragma once
// Decides who a device is, from its TLS client certificate and/or CONNECT credentials,
// per the `auth:` config (CONTRACT.md §2, §3). Pure logic: the password hash check itself
// is CPU-heavy (PBKDF2), so the connection layer runs it on a thread pool between
// begin() and finish().

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/mqtt/Packets.h"
#include "gateway/token/TokenVerifier.h"
#include "policy/PasswordFile.h"

namespace moat::inspect {

struct FactorResult {
    config::AuthMethod method;
    bool success;
};

struct AuthOutcome {
    bool ok = false;
    std::string identity;
    uint8_t v5Reason = 0;  // refusal reason (0x86 bad credentials, 0x87 not authorized, 0x8C)
    std::string reason;    // for the audit log; never contains the password
    std::vector<FactorResult> factors;  // for moat_auth_total
    // Token factor (auth.token), when one was verified:
    std::optional<int64_t> tokenExpiresAt;  // "exp", Unix seconds: the session ends at + leeway
    std::vector<std::string> tokenRoles;    // from roles_claim, roles the policy defines
    std::vector<std::string> ignoredRoles;  // from roles_claim, not defined (audited)
};

// The MQTT 5 Authentication Method that carries a JWT in Authentication Data.
inline constexpr std::string_view kJwtAuthMethod = "jwt";

// What the TLS layer learned about the client certificate.
struct CertFactor {
    bool presented = false;               // a verified certificate was presented
    std::optional<std::string> identity;  // per identity_from; nullopt: field missing
};

// auth.client_id: identity_prefix: the client id is the identity, or the identity followed by
// one of `-_:./` and anything.
bool clientIdHasIdentityPrefix(std::string_view clientId, std::string_view identity);

class Authenticator {
  public:
    explicit Authenticator(const config::AuthConfig& config) : config_(config) {}

    struct Pending {
        AuthOutcome outcome;        // filled in as far as possible
        bool needPassword = false;  // true: run checkPassword() off the loop, then finish()
        bool needToken = false;     // true: verify `token` off the loop, then finishToken()
        bool enhancedJwt = false;   // the token came as v5 Authentication Method "jwt"
        std::string token;          // the token to verify (wiped by the caller once done)
        bool done = false;          // true: outcome is final
    };

    Pending begin(const mqtt::ConnectPacket& connect, const CertFactor& cert,
                  const policy::PasswordFile* passwords) const;
    // Thread-pool part. Thread-safe: only reads the immutable password file.
    static policy::PasswordFile::Verify checkPassword(const policy::PasswordFile& passwords,
                                                      const std::string& user,
                                                      const std::string& password);
    AuthOutcome finish(Pending pending, const mqtt::ConnectPacket& connect, const CertFactor& cert,
                       policy::PasswordFile::Verify verdict) const;
    AuthOutcome finishToken(Pending pending, const mqtt::ConnectPacket& connect,
                            const CertFactor& cert, const token::TokenResult& verdict) const;

  private:
    AuthOutcome conclude(AuthOutcome out, const mqtt::ConnectPacket& connect,
                         const CertFactor& cert, bool passwordPresented, bool passwordOk,
                         const token::TokenResult* tokenVerdict = nullptr) const;

    const config::AuthConfig& config_;
};

}  // namespace moat::inspect
