#pragma once
// The retain / QoS rights of a will, judged at CONNECT (CONTRACT §3): the broker publishes
// the will later, when nothing can be refused any more. The will topic itself is checked
// against the publish rights by the caller first.

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/Policy.h"

namespace moat::inspect {

struct WillRightsDecision {
    bool allowed = true;
    uint8_t v5Reason = 0;  // 0x9B (QoS not supported) / 0x9A (retain not supported)
    std::string rule;      // "max_qos 1", "retain"
    const char* reason = "";
};

WillRightsDecision checkWillRights(const policy::ClientRights& rights, std::string_view topic,
                                   uint8_t qos, bool retain);

}  // namespace moat::inspect
