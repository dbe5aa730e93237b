#pragma once
// What a connection pipeline needs from the configuration, built once per snapshot at the edge
// (net/Snapshot.cpp) so the inspection layer never reads the YAML-shaped config types. The
// shared objects (policy, password file, integrity keys) are the snapshot's own, immutable.

#include <cstdint>
#include <memory>

#include "gateway/config/Config.h"
#include "gateway/inspect/limits/PacketLimiter.h"
#include "gateway/integrity/KeyStore.h"
#include "policy/PasswordFile.h"
#include "policy/Policy.h"
#include "policy/PolicySpec.h"

namespace moat::inspect {

struct PipelineOptions {
    // auth: (Authenticator's own option struct); shares the snapshot's lifetime.
    std::shared_ptr<const config::AuthConfig> auth;
    std::shared_ptr<const policy::Policy> policy;
    std::shared_ptr<const policy::PasswordFile> passwords;  // null: no password factor
    std::shared_ptr<const integrity::KeyStore> integrity;   // null: no integrity.rules
    bool stampIdentity = false;
    config::BackendCredentials credentials = config::BackendCredentials::Identity;

    // Session
    policy::OnPublishDenied onPublishDenied = policy::OnPublishDenied::Drop;
    bool checkDeliveries = true;
    uint32_t maxSubscriptions = 100;
    uint32_t maxUserProperties = 64;
    uint32_t maxInflight = 1000;

    // Limits
    uint32_t maxPacketSize = 256 * 1024;
    LimiterOptions limiter;
    uint64_t maxKeepaliveSeconds = 300;  // 0: no limit
    bool refuseV3Keepalive = false;
    bool publishSpike = false;  // anomaly.publish_spike_factor > 0: admitted publishes reported

    // Deadlines (ms)
    uint64_t handshakeTimeoutMs = 10000;  // accept -> CONNECT accepted (TLS, auth included)
    uint64_t connectTimeoutMs = 5000;     // broker TCP connect + its CONNACK
};

}  // namespace moat::inspect
