#include "gateway/inspect/ReloadCheck.h"

namespace moat::inspect {

ReloadOutcome judgeReload(ConnStage stage, const ReloadFacts& facts) {
    if (stage == ConnStage::BeforeCertificate) return ReloadOutcome::Keep;
    if (facts.certificateInvalid) return ReloadOutcome::CertificateInvalid;
    if (!hasSessionRights(stage)) return ReloadOutcome::Keep;
    if (facts.identityBanned) return ReloadOutcome::Banned;
    if (!facts.hasRights) return ReloadOutcome::NoRights;
    if (!facts.willAllowed) return ReloadOutcome::WillDenied;
    return ReloadOutcome::Keep;
}

EndBy endBy(ConnStage stage) {
    switch (stage) {
        case ConnStage::BeforeCertificate:
            return EndBy::Nothing;
        case ConnStage::AwaitConnect:
            return EndBy::Close;
        case ConnStage::Authenticating:
        case ConnStage::ConnectingBackend:
            return EndBy::ConnackRefusal;
        case ConnStage::Established:
            return EndBy::Disconnect;
    }
    return EndBy::Close;
}

const char* reloadOutcomeName(ReloadOutcome outcome) {
    switch (outcome) {
        case ReloadOutcome::Keep:
            return "keep";
        case ReloadOutcome::CertificateInvalid:
            return "certificate no longer valid after reload";
        case ReloadOutcome::Banned:
            return "banned";
        case ReloadOutcome::NoRights:
            return "identity has no rights after reload";
        case ReloadOutcome::WillDenied:
            return "will topic not allowed after reload";
    }
    return "?";
}

}  // namespace moat::inspect
