#include "gateway/metrics/AddressAnomalies.h"

#include <algorithm>
#include <optional>

namespace moat::metrics {

void AddressAnomalies::onEvent(const AddressEvent& event, std::vector<RaisedAnomaly>& out) {
    latest_ = std::max(latest_, event.at);
    std::optional<Anomaly> a;
    switch (event.kind) {
        case AddressEvent::Kind::AuthFailure:
            a = detector_.onAuthFailure(event.ip, event.identity, latest_);
            if (a) out.push_back({std::move(*a), "", event.ip, event.identity});
            return;
        case AddressEvent::Kind::Connection:
            a = detector_.onConnection(event.ip, latest_);
            if (a) out.push_back({std::move(*a), event.listener, event.ip, ""});
            return;
    }
}

size_t AddressAnomalies::drain(AddressEventQueue& queue, std::vector<RaisedAnomaly>& out) {
    return queue.drain([&](AddressEvent&& e) { onEvent(e, out); });
}

}  // namespace moat::metrics
