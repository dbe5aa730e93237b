#pragma once
// What Moat does with a client's CONNECT keepalive (CONTRACT §3 "Keepalive"). Pure.
//
// limits.max_keepalive bounds how long a silent connection may hold gateway resources. An
// MQTT 5 client above it (or with 0) is told Server Keep Alive = max_keepalive. An MQTT 3.x
// client cannot be told anything, and refusing it (Mosquitto's max_keepalive behaviour)
// breaks devices that work against a broker that has no such limit: by default its CONNECT
// goes on unchanged and TCP keepalive probes (idle time max_keepalive) reap the connection
// when the peer is gone, while a live idle device, whose kernel answers the probes, stays.
// The price is that a peer that is alive but silent is not reaped (keepalive 0 is the
// slow-connection resource-holding pattern of CVE-2020-13849); `v3_keepalive: refuse`
// keeps the refusal for operators who prefer it.

#include <algorithm>
#include <cstdint>

#include "gateway/mqtt/Types.h"

namespace moat::inspect {

struct KeepAliveDecision {
    bool refuse = false;     // v3: CONNACK 0x02 (Identifier rejected, as Mosquitto answers)
    uint16_t effective = 0;  // the keepalive the broker sees and the gateway enforces
    bool tcpProbes = false;  // turn on TCP keepalive probes on the client socket
};

// maxSeconds: limits.max_keepalive in seconds (0: no limit).
inline KeepAliveDecision decideKeepAlive(mqtt::ProtocolVersion version, uint16_t requested,
                                         uint64_t maxSeconds, bool refuseV3) {
    KeepAliveDecision d;
    d.effective = requested;
    if (maxSeconds == 0 || (requested != 0 && requested <= maxSeconds)) return d;
    if (version == mqtt::ProtocolVersion::V5) {
        d.effective = static_cast<uint16_t>(std::min<uint64_t>(maxSeconds, 0xFFFF));
        return d;
    }
    if (refuseV3) {
        d.refuse = true;
        return d;
    }
    d.tcpProbes = true;
    return d;
}

}  // namespace moat::inspect
