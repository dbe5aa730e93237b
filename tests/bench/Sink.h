#pragma once
// A fast fake MQTT broker: CONNECT -> CONNACK, SUBSCRIBE -> SUBACK, PUBLISH QoS 1 -> PUBACK,
// QoS 2 -> PUBREC / PUBREL -> PUBCOMP, PINGREQ -> PINGRESP; QoS 0 publishes are counted and
// dropped. Measures a gateway alone (backend = sink) without a real broker's cost. One thread
// per connection: the bench drives few connections, and a blocked peer stalls only its own.
//
// A connection whose first bytes are "STATS\n" gets the running PUBLISH count as one decimal
// line and is closed: `throughput --count-at` reads the count at the sink this way.
//
// With `deliver`, PUBLISH packets are also copied to every connection that subscribed (no
// topic matching): a minimal broker for the self-test.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace moat::bench {

class SinkServer {
  public:
    SinkServer();
    ~SinkServer();
    // Binds host:port (0 = ephemeral) and starts accepting. False and error set on failure.
    bool start(const std::string& host, uint16_t port, bool deliver, std::string& error);
    uint16_t port() const;
    uint64_t publishes() const;
    uint64_t connections() const;
    // Stops accepting, closes every connection, waits (bounded) for the handler threads.
    void stop();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

// Asks a sink for its PUBLISH count; -1 when unreachable.
int64_t querySinkCount(const std::string& host, uint16_t port);

}  // namespace moat::bench
