#pragma once
// backend.credentials: passthrough forwards the device's CONNECT username (and password) to
// the broker unchanged, and the broker grants rights by that name. A name the gateway has not
// proven must therefore not reach the broker: only the password factor proves a username (the
// certificate proves the identity, not whatever name the device writes next to it).

#include <optional>
#include <string>

#include "gateway/config/Config.h"
#include "gateway/inspect/Authenticator.h"

namespace moat::inspect {

// True when a password factor succeeded for the CONNECT username.
bool usernameProven(const AuthOutcome& outcome);

// The outcome of authentication, refused (v5 0x86 / v3 0x04) when `mode` forwards a username
// that the password factor did not prove and that differs from the authenticated identity.
// An outcome that is already a refusal, or another mode, is returned unchanged.
AuthOutcome checkForwardedUsername(config::BackendCredentials mode, AuthOutcome outcome,
                                   const std::optional<std::string>& username);

}  // namespace moat::inspect
