#pragma once
// The process-wide view for the per-address anomaly kinds (`auth_failures`,
// `connection_storm`): the main loop drains every worker's AddressEventQueue into the one
// AnomalyDetector and gets back the anomalies to count and audit, with the fields their audit
// event carries. Pure logic (no libuv): the events carry their own time, taken where they
// happened, so a late drain still counts them in the right window.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "gateway/config/Config.h"
#include "gateway/metrics/AddressEventQueue.h"
#include "gateway/metrics/Anomaly.h"
#include "gateway/metrics/AnomalyDetector.h"

namespace moat::metrics {

// A raised anomaly and the audit fields of the event that raised it.
struct RaisedAnomaly {
    Anomaly anomaly;
    std::string listener;  // connection_storm: the listener of the connection that raised it
    std::string remote;    // the source address
    std::string identity;  // auth_failures: the claimed identity ("" when unknown)
};

class AddressAnomalies {
  public:
    using time_point = AnomalyDetector::time_point;

    explicit AddressAnomalies(const config::AnomalyConfig& config,
                              size_t maxTracked = AnomalyDetector::kDefaultMaxTracked)
        : detector_(config, maxTracked) {}

    // Feeds one event to the detector; an anomaly it raises is appended to `out`.
    void onEvent(const AddressEvent& event, std::vector<RaisedAnomaly>& out);
    // Consumer side of `queue`: feeds every waiting event. Returns how many.
    size_t drain(AddressEventQueue& queue, std::vector<RaisedAnomaly>& out);

    void sweep(time_point now) { detector_.sweep(now); }
    AnomalyDetector::Sizes sizes() const { return detector_.sizes(); }

  private:
    AnomalyDetector detector_;
    // Queues are drained one after another, so events reach the detector slightly out of
    // order across workers; its windows only ever move forward.
    time_point latest_{};
};

}  // namespace moat::metrics
