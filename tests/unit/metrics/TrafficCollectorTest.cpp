#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "gateway/metrics/Metrics.h"
#include "gateway/metrics/TrafficCollector.h"

using namespace moat::metrics;

namespace {

// The value of one series line of the text exposition, or -1 when absent.
double sample(const std::string& text, const std::string& series) {
    const std::string needle = series + " ";
    auto at = text.find("\n" + needle);
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + 1 + needle.size()));
}

}  // namespace

TEST_CASE("traffic counters are visible to the very next scrape, no flush") {
    Metrics m;
    TrafficCounters w1, w2;
    m.traffic().attach(&w1);
    m.traffic().attach(&w2);
    const std::string pub = "moat_packets_total{direction=\"client_to_broker\",type=\"PUBLISH\"}";
    const std::string out = "moat_bytes_total{direction=\"broker_to_client\"}";
    CHECK(sample(m.serialize(), pub) == 0);  // every series exists from the start
    w1.packetsIn[3]++;
    w2.packetsIn[3] += 2;
    w2.bytesOut += 100;
    std::string text = m.serialize();
    CHECK(sample(text, pub) == 3);
    CHECK(sample(text, out) == 100);
    // A worker that goes away keeps its counts in the totals: counters never go backwards.
    m.traffic().detach(&w2);
    text = m.serialize();
    CHECK(sample(text, pub) == 3);
    CHECK(sample(text, out) == 100);
    m.countPacket(Direction::ClientToBroker, 3, 7);
    CHECK(sample(m.serialize(), pub) == 4);
    m.traffic().detach(&w1);
}

TEST_CASE("a scrape on another thread reads a single-writer worker's counters") {
    Metrics m;
    TrafficCounters w;
    m.traffic().attach(&w);
    constexpr int kPackets = 100000;
    std::thread writer([&] {
        for (int i = 0; i < kPackets; ++i) {
            w.packetsOut[3]++;
            w.bytesOut += 10;
        }
    });
    double last = 0;
    for (int i = 0; i < 50; ++i) {  // monotonic while the writer runs
        double now = sample(m.serialize(),
                            "moat_packets_total{direction=\"broker_to_client\",type=\"PUBLISH\"}");
        CHECK(now >= last);
        last = now;
    }
    writer.join();
    std::string text = m.serialize();
    CHECK(sample(text, "moat_packets_total{direction=\"broker_to_client\",type=\"PUBLISH\"}") ==
          kPackets);
    CHECK(sample(text, "moat_bytes_total{direction=\"broker_to_client\"}") == kPackets * 10.0);
    m.traffic().detach(&w);
}
