#pragma once
// The per-connection MQTT inspection state once a client is authenticated: topic-alias
// maps in both directions, SUBACK merging, gateway-owned QoS 2 flows, subscriptions.
// Pure: bytes in, Verdict out, no sockets, so every rule is unit-testable.
//
// Why the gateway owns some flows: when it drops a client's QoS 1/2 PUBLISH it must answer
// PUBACK/PUBREC itself (and for v3 the following PUBREL with PUBCOMP) so the client's
// session state stays consistent; symmetrically for blocked deliveries towards the broker.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gateway/inspect/DecisionCache.h"
#include "gateway/inspect/SubscriptionTable.h"
#include "gateway/inspect/Verdict.h"
#include "gateway/integrity/Checker.h"
#include "gateway/mqtt/Frame.h"
#include "gateway/mqtt/Packets.h"
#include "gateway/mqtt/Types.h"
#include "policy/Policy.h"
#include "policy/PolicySpec.h"

namespace moat::inspect {

// Where the session reports security decisions (audit log + metrics live behind it).
class SessionEvents {
  public:
    virtual ~SessionEvents() = default;
    // action: "publish" | "subscribe" | "deliver"
    virtual void onAuthzDenied(const char* action, std::string_view topic,
                               const policy::Decision& decision) = 0;
    // A PUBLISH refused by the retain / QoS rights (`rule`: "max_qos 1", "retain"), counted and
    // audited as a denied publish.
    virtual void onRightsDenied(std::string_view topic, std::string_view rule, const char* reason) {
        (void)rule, (void)reason;
        onAuthzDenied("publish", topic, policy::Decision::defaultDeny());
    }
    virtual void onProtocolError(uint8_t reason, const char* detail) = 0;
    virtual void onSubscriptionLimit(std::string_view filter) = 0;
    // A broker packet the session cannot inspect (undecodable, a type a broker never sends, a
    // PUBLISH with an unknown topic alias): never passed on unchecked, the client is closed.
    virtual void onBackendMalformed(const char* detail) { (void)detail; }
    // A PUBLISH refused by integrity.rules; counted as a denied publish with action
    // "integrity". `rule`: "integrity.rules[i]"; `reason`: "missing signature", "bad signature",
    // "stale timestamp", "no key", ...
    virtual void onIntegrityDenied(std::string_view topic, std::string_view rule,
                                   const char* reason) {
        (void)topic, (void)rule, (void)reason;
    }
    // v5 re-authentication (Authentication Method "jwt", AUTH 0x19): a fresh token to verify.
    // The AUTH packet itself never reaches the broker; the connection answers AUTH 0x00 or
    // ends the session (DISCONNECT 0x87).
    virtual void onReauthenticate(std::string token) { (void)token; }
};

struct SessionOptions {
    policy::OnPublishDenied onPublishDenied = policy::OnPublishDenied::Drop;
    bool checkDeliveries = true;
    uint32_t maxSubscriptions = 100;
    uint32_t maxUserProperties = 64;
    uint32_t maxInflight = 1000;
    // v5: the keepalive the gateway clamped the client's to (limits.max_keepalive); 0 = not
    // clamped. Announced to the client as Server Keep Alive in the broker's CONNACK.
    uint16_t serverKeepAlive = 0;
    // v5: the CONNECT asked for Session Expiry 0 (or sent none): a DISCONNECT may then not
    // raise it (MQTT-3.14.2-2).
    bool connectSessionExpiryZero = false;
    // The session's effective expiry in seconds (client-id ownership): v5 the CONNECT's
    // Session Expiry Interval (0 when absent), v3 0 for clean session and 0xFFFFFFFF (never)
    // otherwise. Updated by the broker's CONNACK and the client's DISCONNECT (v5).
    uint32_t sessionExpiry = 0;
    // The subscriptions this client id's stored session held when its last connection ended
    // (client-id ownership keeps them): counted towards max_subscriptions, and judged by
    // reloads, once the broker's CONNACK says it resumed that session.
    std::vector<std::string> storedSubscriptions;
    // integrity.rules for this client (its keys loaded at CONNECT); null: no rules.
    std::shared_ptr<integrity::Checker> integrity;
    // integrity.stamp_identity (v5): the identity stamped on every forwarded PUBLISH as user
    // property moat-identity; client-supplied copies are removed. nullopt: off.
    std::optional<std::string> stampIdentity;
    // v5 Authentication Method "jwt" at CONNECT (auth.token): the CONNACK echoes the method
    // (MQTT 5 §4.12) and AUTH 0x19 with a fresh token re-authenticates. Empty: no enhanced
    // authentication, an AUTH packet is a protocol error.
    std::string authMethod;
};

class Session {
  public:
    Session(mqtt::ProtocolVersion version, std::shared_ptr<const policy::ClientRights> rights,
            SessionOptions options, SessionEvents& events);

    // A client->broker packet (after CONNECT). body = remainingLength bytes after the header.
    Verdict onClientPacket(const mqtt::Frame& frame, const uint8_t* body);
    // A broker->client packet.
    Verdict onBrokerPacket(const mqtt::Frame& frame, const uint8_t* body);

    // Reload: new rights; returns filters that are no longer allowed (caller unsubscribes).
    std::vector<std::string> replaceRights(std::shared_ptr<const policy::ClientRights> rights);
    // Builds a gateway-originated UNSUBSCRIBE for `filters`; its UNSUBACK will be consumed.
    // Empty when every packet id is in use by the client (nothing can be sent now).
    std::vector<uint8_t> makeUnsubscribe(const std::vector<std::string>& filters);
    // Reload: policy.check_deliveries (call before replaceRights, which re-judges with it).
    // Once a subscription was granted with a withheld branch, this session keeps checking
    // deliveries: turning the option off must not open that branch before the reload's
    // UNSUBSCRIBE reaches the broker.
    void setCheckDeliveries(bool on) { options_.checkDeliveries = on; }
    // integrity.stamp_identity switched on or off (at CONNECT, and by a reload).
    void setStampIdentity(std::optional<std::string> identity);
    // Reload: new integrity rules / keys (null: none).
    void replaceIntegrity(std::shared_ptr<integrity::Checker> checker) {
        options_.integrity = std::move(checker);
    }

    // The filters the broker holds or will hold for this client (in flight included).
    std::vector<std::string> subscriptions() const { return subscriptions_.filters(); }
    // Too many SUBSCRIBE filters await the broker's answer: read nothing more from the client
    // until it has answered (each pending filter pins its name, each filter of a merged SUBACK
    // its code, in memory).
    bool backlogged() const {
        return subscriptions_.pendingFilters() > kMaxPendingFilters ||
               pendingSubackCodes_ > kMaxPendingSubackCodes;
    }
    // The broker resumed a stored session (CONNACK session present).
    bool resumedSession() const { return resumedSession_; }
    // v5: what the CONNACK announced (Maximum QoS; Retain Available 0).
    uint8_t announcedMaxQos() const { return announcedMaxQos_; }
    bool announcedNoRetain() const { return announcedNoRetain_; }
    mqtt::ProtocolVersion version() const { return version_; }
    // The session expiry as last set (SessionOptions::sessionExpiry).
    uint32_t sessionExpiry() const { return options_.sessionExpiry; }
    size_t inflight() const { return inflight_.size(); }

  private:
    Verdict clientPublish(const mqtt::Frame& frame, const uint8_t* body);
    Verdict clientSubscribe(const mqtt::Frame& frame, const uint8_t* body);
    Verdict clientUnsubscribe(const mqtt::Frame& frame, const uint8_t* body);
    Verdict clientAck(const mqtt::Frame& frame, const uint8_t* body);
    Verdict brokerPublish(const mqtt::Frame& frame, const uint8_t* body);
    Verdict brokerSuback(const mqtt::Frame& frame, const uint8_t* body);
    Verdict brokerUnsuback(const mqtt::Frame& frame, const uint8_t* body);
    Verdict brokerAck(const mqtt::Frame& frame, const uint8_t* body);
    Verdict brokerConnack(const mqtt::Frame& frame, const uint8_t* body);
    Verdict protocolError(uint8_t reason, const char* detail);
    Verdict brokerMalformed(const char* detail);
    Verdict deniedPublish(uint8_t qos, uint16_t packetId, bool disconnect);
    // Retain / QoS rights of an allowed PUBLISH; nullopt = within them.
    std::optional<Verdict> publishRights(const mqtt::PublishView& pub, std::string_view topic);

    bool v5() const { return version_ == mqtt::ProtocolVersion::V5; }

    mqtt::ProtocolVersion version_;
    std::shared_ptr<const policy::ClientRights> rights_;
    DecisionCache publishDecisions_;   // client PUBLISH topics
    DecisionCache deliveryDecisions_;  // broker PUBLISH topics
    DecisionCache retainDecisions_;    // client retained PUBLISH topics
    SessionOptions options_;
    SessionEvents& events_;

    // v5 topic aliases: client->broker (what the client set) and broker->client.
    std::unordered_map<uint16_t, std::string> clientAliases_;    // as the client set them
    std::unordered_map<uint16_t, std::string> aliasesAtBroker_;  // as the broker maps them
    std::unordered_map<uint16_t, std::string> brokerAliases_;
    // Broker aliases whose mapping the client has seen (a blocked delivery may have hidden it).
    std::unordered_set<uint16_t> clientKnowsBrokerAlias_;
    uint16_t brokerTopicAliasMax_ = 0;  // from the broker's CONNACK (what the client may use)
    // v5, from the CONNACK the client got: a PUBLISH beyond them is a protocol violation
    // (0x9B / 0x9A); beyond rights a later reload narrowed, a denied publish.
    uint8_t announcedMaxQos_ = 2;
    bool announcedNoRetain_ = false;

    // SUBSCRIBE packets forwarded with some filters removed: packet id -> per-filter codes,
    // 0xFF where the broker's answer goes.
    // SUBSCRIBEs the gateway changed (filters refused or merged), by packet id: per client
    // filter, a gateway code or kFromBroker + the index of the forwarded filter whose code
    // it takes from the broker's SUBACK.
    static constexpr uint32_t kFromBroker = 0x100;
    std::unordered_map<uint16_t, std::vector<uint32_t>> pendingSubacks_;
    size_t pendingSubackCodes_ = 0;  // their total size
    static constexpr size_t kMaxPendingSubackCodes = 256 * 1024;
    // Subscriptions (the broker's, in flight included) and the client's pending
    // SUBSCRIBE / UNSUBSCRIBE ids.
    SubscriptionTable subscriptions_;
    static constexpr size_t kMaxPendingFilters = 4096;
    std::unordered_set<uint16_t> gatewayUnsubscribes_;  // UNSUBACKs to consume
    // The broker resumed a session whose subscriptions this connection never saw: its
    // deliveries are checked whatever check_deliveries says.
    bool resumedSession_ = false;
    uint16_t nextGatewayPacketId_ = 0xFFFF;

    // Client QoS 2 publishes the gateway dropped (v3: it answers the PUBREL itself).
    std::unordered_set<uint16_t> droppedClientQos2_;
    // Deliveries the gateway blocked at QoS 2: it answers the broker's PUBREL itself.
    std::unordered_set<uint16_t> blockedDeliveryQos2_;
    // Client QoS 1/2 publishes forwarded and not yet completed (bounded: max_inflight).
    std::unordered_set<uint16_t> inflight_;

    // A subscription was granted over a denied branch (deliveries stay checked, see above).
    bool withholding_ = false;

    // stamp_identity: the encoded moat-identity user property (CONNECT, and each reload).
    std::vector<uint8_t> stampProperty_;
};

}  // namespace moat::inspect
