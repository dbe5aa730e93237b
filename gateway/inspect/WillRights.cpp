#include "gateway/inspect/WillRights.h"

#include "gateway/mqtt/Types.h"

namespace moat::inspect {

WillRightsDecision checkWillRights(const policy::ClientRights& rights, std::string_view topic,
                                   uint8_t qos, bool retain) {
    WillRightsDecision out;
    if (qos > rights.maxQos()) {
        out.allowed = false;
        out.v5Reason = mqtt::reason::QosNotSupported;
        out.rule = "max_qos " + std::to_string(rights.maxQos());
        out.reason = "will QoS above max_qos";
        return out;
    }
    if (retain && !rights.checkRetain(topic).allowed) {
        out.allowed = false;
        out.v5Reason = mqtt::reason::RetainNotSupported;
        out.rule = "retain";
        out.reason = "retained will outside the retain rights";
    }
    return out;
}

}  // namespace moat::inspect
