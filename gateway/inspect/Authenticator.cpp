#include "gateway/inspect/Authenticator.h"

#include "gateway/mqtt/Types.h"
#include "gateway/token/Jwt.h"

namespace moat::inspect {

bool clientIdHasIdentityPrefix(std::string_view clientId, std::string_view identity) {
    if (clientId.substr(0, identity.size()) != identity) return false;
    if (clientId.size() == identity.size()) return true;
    // A separator after the identity: `dev1` may use `dev1-a`, never `dev10`.
    return std::string_view("-_:./").find(clientId[identity.size()]) != std::string_view::npos;
}

namespace rc = mqtt::reason;
using config::AuthMethod;

namespace {

AuthOutcome refuse(AuthOutcome out, uint8_t reason, std::string why) {
    out.ok = false;
    out.v5Reason = reason;
    out.reason = std::move(why);
    return out;
}

}  // namespace

Authenticator::Pending Authenticator::begin(const mqtt::ConnectPacket& connect,
                                            const CertFactor& cert,
                                            const policy::PasswordFile* passwords) const {
    Pending p;
    const bool tokens = config_.hasMethod(AuthMethod::Token) && config_.token.has_value();
    if (auto method = connect.authenticationMethod()) {
        if (!tokens || *method != kJwtAuthMethod) {
            p.outcome =
                refuse({}, rc::BadAuthenticationMethod, "enhanced authentication is not supported");
            p.done = true;
            return p;
        }
        auto data = connect.authenticationData();
        if (!data || connect.password) {
            p.outcome = refuse({}, rc::BadUsernameOrPassword,
                               data ? "both a password and a jwt authentication method"
                                    : "jwt authentication method without authentication data");
            p.outcome.factors.push_back({AuthMethod::Token, false});
            p.done = true;
            return p;
        }
        p.needToken = true;
        p.enhancedJwt = true;
        p.token = std::move(*data);
        return p;
    }
    bool passwordPresented = connect.password.has_value();
    // A password with the shape of a JWT is a token (CONTRACT §3), anything else a password.
    if (passwordPresented && tokens &&
        token::looksLikeJwt(std::string_view(
            reinterpret_cast<const char*>(connect.password->data()), connect.password->size()))) {
        p.needToken = true;
        p.token.assign(connect.password->begin(), connect.password->end());
        return p;
    }
    if (passwordPresented && config_.hasMethod(AuthMethod::Password) && passwords &&
        connect.username) {
        p.needPassword = true;
        return p;
    }
    p.outcome = conclude({}, connect, cert, passwordPresented, false);
    p.done = true;
    return p;
}

policy::PasswordFile::Verify Authenticator::checkPassword(const policy::PasswordFile& passwords,
                                                          const std::string& user,
                                                          const std::string& password) {
    return passwords.verify(user, password);
}

AuthOutcome Authenticator::finish(Pending pending, const mqtt::ConnectPacket& connect,
                                  const CertFactor& cert,
                                  policy::PasswordFile::Verify verdict) const {
    bool ok = verdict == policy::PasswordFile::Verify::Ok;
    return conclude(std::move(pending.outcome), connect, cert, true, ok);
}

AuthOutcome Authenticator::finishToken(Pending pending, const mqtt::ConnectPacket& connect,
                                       const CertFactor& cert,
                                       const token::TokenResult& verdict) const {
    return conclude(std::move(pending.outcome), connect, cert, false, false, &verdict);
}

AuthOutcome Authenticator::conclude(AuthOutcome out, const mqtt::ConnectPacket& connect,
                                    const CertFactor& cert, bool passwordPresented, bool passwordOk,
                                    const token::TokenResult* tokenVerdict) const {
    const bool useCert = config_.hasMethod(AuthMethod::Certificate);
    const bool usePassword = config_.hasMethod(AuthMethod::Password);
    const bool useToken = config_.hasMethod(AuthMethod::Token);

    // --- certificate factor (already verified against client_ca / CRL by the TLS layer)
    bool certOk = false;
    if (useCert && cert.presented) {
        if (!cert.identity || cert.identity->empty()) {
            out.factors.push_back({AuthMethod::Certificate, false});
            return refuse(std::move(out), rc::NotAuthorized,
                          "client certificate has no identity field for identity_from");
        }
        certOk = true;
        out.factors.push_back({AuthMethod::Certificate, true});
    }

    // --- password factor. A factor that is presented and fails refuses, whatever `require`.
    if (usePassword && passwordPresented) {
        if (!connect.username) {
            return refuse(std::move(out), rc::BadUsernameOrPassword, "password without username");
        }
        out.factors.push_back({AuthMethod::Password, passwordOk});
        if (!passwordOk)
            return refuse(std::move(out), rc::BadUsernameOrPassword, "bad username or password");
    }
    const bool pwOk = usePassword && passwordPresented && passwordOk;

    // --- token factor (verified off the loop); a bad token refuses like a bad password.
    bool tokenOk = false;
    if (tokenVerdict) {
        out.factors.push_back({AuthMethod::Token, tokenVerdict->ok()});
        if (!tokenVerdict->ok())
            return refuse(std::move(out), rc::BadUsernameOrPassword, tokenVerdict->reason);
        tokenOk = true;
        out.tokenExpiresAt = tokenVerdict->expiresAt;
        out.tokenRoles = tokenVerdict->roles;
        out.ignoredRoles = tokenVerdict->ignoredRoles;
    }

    // --- combine
    if (config_.require == config::AuthRequire::All) {
        if (useCert && !certOk)
            return refuse(std::move(out), rc::NotAuthorized, "client certificate required");
        if (usePassword && !pwOk)
            return refuse(std::move(out), rc::BadUsernameOrPassword, "password required");
        if (useToken && !tokenOk)
            return refuse(std::move(out), rc::BadUsernameOrPassword, "token required");
    }
    if (tokenOk) {
        out.identity = tokenVerdict->identity;
        // require: all with certificate and token is MFA: both must name one identity. With
        // `any`, a verified token names who this is (a browser or app has no certificate).
        if (certOk && config_.require == config::AuthRequire::All && out.identity != *cert.identity)
            return refuse(std::move(out), rc::NotAuthorized,
                          "token identity does not match certificate identity");
    } else if (!certOk && !pwOk) {
        if (config_.anonymous && !passwordPresented) {
            out.ok = true;
            out.identity = "anonymous";
            return out;
        }
        if (connect.username && !passwordPresented && usePassword)
            return refuse(std::move(out), rc::BadUsernameOrPassword, "password required");
        return refuse(std::move(out), rc::NotAuthorized, "no accepted authentication factor");
    }

    if (tokenOk) {
        // identity set above
    } else if (certOk) {
        out.identity = *cert.identity;
        // With both factors (cert + password) the password was checked for this username, so
        // it must name the same identity. A username alone proves nothing and is not judged.
        if (pwOk && config_.usernameMustMatchCert && *connect.username != out.identity)
            return refuse(std::move(out), rc::NotAuthorized,
                          "username does not match certificate identity");
    } else {
        out.identity = *connect.username;
    }

    // --- client id rule
    switch (config_.clientId) {
        case config::ClientIdRule::Any:
            break;
        case config::ClientIdRule::Identity:
            if (connect.clientId != out.identity)
                return refuse(std::move(out), rc::NotAuthorized,
                              "client id must equal the identity");
            break;
        case config::ClientIdRule::IdentityPrefix:
            if (!clientIdHasIdentityPrefix(connect.clientId, out.identity))
                return refuse(std::move(out), rc::NotAuthorized,
                              "client id must be the identity or start with it and one of -_:./");
            break;
    }
    out.ok = true;
    return out;
}

}  // namespace moat::inspect
