#include "gateway/metrics/TrafficCollector.h"

#include <algorithm>
#include <string>

#include "gateway/metrics/Metrics.h"

namespace moat::metrics {

void TrafficCollector::attach(const TrafficCounters* counters) {
    std::lock_guard lock(mutex_);
    live_.push_back(counters);
}

void TrafficCollector::detach(const TrafficCounters* counters) {
    std::lock_guard lock(mutex_);
    auto it = std::find(live_.begin(), live_.end(), counters);
    if (it == live_.end()) return;
    accumulate(retired_, **it);
    live_.erase(it);
}

void TrafficCollector::add(bool clientToBroker, uint8_t packetType, uint64_t packets,
                           uint64_t bytes) {
    std::lock_guard lock(mutex_);
    const size_t d = clientToBroker ? 0 : 1;
    retired_.packets[d][packetType & 15] += packets;
    retired_.bytes[d] += bytes;
}

void TrafficCollector::accumulate(Totals& into, const TrafficCounters& c) {
    for (size_t t = 0; t < 16; ++t) {
        into.packets[0][t] += c.packetsIn[t].load();
        into.packets[1][t] += c.packetsOut[t].load();
    }
    into.bytes[0] += c.bytesIn.load();
    into.bytes[1] += c.bytesOut.load();
}

std::vector<prometheus::MetricFamily> TrafficCollector::Collect() const {
    Totals sum;
    {
        std::lock_guard lock(mutex_);
        sum = retired_;
        for (const TrafficCounters* c : live_) accumulate(sum, *c);
    }
    prometheus::MetricFamily packets;
    packets.name = "moat_packets_total";
    packets.help = "MQTT packets inspected, by direction and type.";
    packets.type = prometheus::MetricType::Counter;
    prometheus::MetricFamily bytes;
    bytes.name = "moat_bytes_total";
    bytes.help = "MQTT bytes inspected, by direction.";
    bytes.type = prometheus::MetricType::Counter;
    for (Direction d : {Direction::ClientToBroker, Direction::BrokerToClient}) {
        const size_t di = static_cast<size_t>(d);
        const std::string direction(directionLabel(d));
        prometheus::ClientMetric b;
        b.label = {{"direction", direction}};
        b.counter.value = static_cast<double>(sum.bytes[di]);
        bytes.metric.push_back(std::move(b));
        for (uint8_t type = 1; type <= 15; ++type) {
            prometheus::ClientMetric p;
            p.label = {{"direction", direction}, {"type", std::string(packetTypeLabel(type))}};
            p.counter.value = static_cast<double>(sum.packets[di][type]);
            packets.metric.push_back(std::move(p));
        }
    }
    return {std::move(packets), std::move(bytes)};
}

}  // namespace moat::metrics
