#include "gateway/inspect/ForwardedCredentials.h"

#include "gateway/mqtt/Types.h"

namespace moat::inspect {

bool usernameProven(const AuthOutcome& outcome) {
    for (const auto& f : outcome.factors)
        if (f.method == config::AuthMethod::Password && f.success) return true;
    return false;
}

AuthOutcome checkForwardedUsername(config::BackendCredentials mode, AuthOutcome outcome,
                                   const std::optional<std::string>& username) {
    if (!outcome.ok || mode != config::BackendCredentials::Passthrough) return outcome;
    if (!username || usernameProven(outcome) || *username == outcome.identity) return outcome;
    outcome.ok = false;
    outcome.v5Reason = mqtt::reason::BadUsernameOrPassword;
    outcome.reason =
        "backend.credentials passthrough: username is not proven and differs from the "
        "authenticated identity";
    return outcome;
}

}  // namespace moat::inspect
