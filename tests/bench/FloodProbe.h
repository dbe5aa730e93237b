#pragma once
// The well-behaved device of `moat-bench flood`: one TLS MQTT session that publishes a small
// message to a topic it subscribes to every --probe-interval-ms and times the round trip
// (client -> gateway -> broker -> gateway -> client). Samples are kept per phase (baseline
// before the attack, during the attack) so the report shows whether the gateway and the broker
// behind it stay responsive while they are being flooded.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/Conn.h"
#include "tests/bench/Json.h"
#include "tests/bench/Mqtt.h"

namespace moat::bench {

class FloodProbe {
  public:
    enum Phase { kBaseline = 0, kAttack = 1, kOff = 2 };

    FloodProbe() = default;
    ~FloodProbe() { stop(); }
    FloodProbe(const FloodProbe&) = delete;
    FloodProbe& operator=(const FloodProbe&) = delete;

    // Connects, subscribes and starts the sampling thread (phase kBaseline). False, error set,
    // when the session cannot be established.
    bool start(const Endpoint& ep, const std::string& topic, int intervalMs, std::string& error);
    void setPhase(Phase p) { phase_.store(p); }
    void stop();
    bool running() const { return thread_.joinable(); }

    // Prints `  probe PHASE: n samples, p50 X us, p99 Y us, max Z us, N lost` and returns the
    // same as JSON.
    Json report(Phase p);

  private:
    void loop();
    bool reconnect();

    Endpoint ep_;
    std::string topic_;
    std::string clientId_;
    int intervalMs_ = 100;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int> phase_{kBaseline};
    std::mutex mu_;
    std::vector<int64_t> samples_[2];  // round-trip microseconds
    int64_t lost_[2] = {0, 0};         // no echo within the timeout, or the session dropped
    int64_t reconnects_ = 0;
    std::unique_ptr<mqtt::Client> session_;
};

}  // namespace moat::bench
