#pragma once
// What a configuration reload means for one connection, whatever stage it is in. A reload
// must not skip a connection because it is not yet established: a device that finished its
// TLS handshake before a CRL update would otherwise get in with a revoked certificate, and one
// whose password check ran during a reload would keep rights the reload took away.
//
//   stage              judged on reload                     ended by
//   BeforeCertificate  nothing yet (CONNECT re-verifies)    -
//   AwaitConnect       certificate                          close (no MQTT spoken yet)
//   Authenticating     certificate (rights: at finishAuth)  CONNACK refusal
//   ConnectingBackend  certificate, ban, rights, will       CONNACK refusal
//   Established        certificate, ban, rights, will       DISCONNECT (v5)

#include <cstdint>

namespace moat::inspect {

enum class ConnStage : uint8_t {
    BeforeCertificate,  // PROXY header, TLS handshake
    AwaitConnect,
    Authenticating,
    ConnectingBackend,
    Established,
};

struct ReloadFacts {
    bool certificateInvalid = false;  // a presented certificate fails the new CA / CRL
    bool identityBanned = false;
    bool hasRights = true;    // the new policy leaves the identity some right
    bool willAllowed = true;  // no will, or the new policy still allows its topic
};

enum class ReloadOutcome : uint8_t { Keep, CertificateInvalid, Banned, NoRights, WillDenied };

// Whether the stage has an identity and rights that a reload can take away.
constexpr bool hasSessionRights(ConnStage s) {
    return s == ConnStage::ConnectingBackend || s == ConnStage::Established;
}

ReloadOutcome judgeReload(ConnStage stage, const ReloadFacts& facts);

enum class EndBy : uint8_t { Nothing, Close, ConnackRefusal, Disconnect };
// How a connection in `stage` is ended when a reload (or a check at CONNECT) refuses it.
EndBy endBy(ConnStage stage);

const char* reloadOutcomeName(ReloadOutcome outcome);

}  // namespace moat::inspect
