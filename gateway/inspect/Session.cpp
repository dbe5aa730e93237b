#include "gateway/inspect/Session.h"

#include <algorithm>

#include "gateway/integrity/PublishRewrite.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Encoder.h"
#include "gateway/mqtt/Utf8.h"

namespace moat::inspect {

using mqtt::PacketType;
namespace rc = mqtt::reason;

namespace {

std::vector<uint8_t> makeAck(PacketType type, mqtt::ProtocolVersion v, uint16_t id,
                             uint8_t reason) {
    mqtt::AckPacket ack;
    ack.type = type;
    ack.packetId = id;
    ack.reason = reason;
    return mqtt::encodeAck(ack, v);
}

}  // namespace

Session::Session(mqtt::ProtocolVersion version, std::shared_ptr<const policy::ClientRights> rights,
                 SessionOptions options, SessionEvents& events)
    : version_(version), rights_(std::move(rights)), options_(std::move(options)), events_(events) {
    setStampIdentity(options_.stampIdentity);
}

void Session::setStampIdentity(std::optional<std::string> identity) {
    options_.stampIdentity = std::move(identity);
    stampProperty_.clear();
    if (v5() && options_.stampIdentity)
        stampProperty_ = integrity::encodeIdentityProperty(*options_.stampIdentity);
}

Verdict Session::protocolError(uint8_t reason, const char* detail) {
    events_.onProtocolError(reason, detail);
    return Verdict::close(reason);
}

// ---------------------------------------------------------------- client -> broker

Verdict Session::onClientPacket(const mqtt::Frame& frame, const uint8_t* body) {
    if (!mqtt::validFixedHeaderFlags(frame, version_))
        return protocolError(rc::MalformedPacket, "reserved fixed-header flags");
    switch (frame.type()) {
        case PacketType::Publish:
            return clientPublish(frame, body);
        case PacketType::Subscribe:
            return clientSubscribe(frame, body);
        case PacketType::Unsubscribe:
            return clientUnsubscribe(frame, body);
        case PacketType::Puback:
        case PacketType::Pubrec:
        case PacketType::Pubrel:
        case PacketType::Pubcomp:
            return clientAck(frame, body);
        case PacketType::Pingreq:
            if (frame.remainingLength != 0)
                return protocolError(rc::MalformedPacket, "PINGREQ body");
            return Verdict::forward();
        case PacketType::Disconnect: {
            mqtt::DisconnectPacket d;
            uint8_t r = mqtt::decodeDisconnect(body, frame.remainingLength, version_, d);
            if (r != rc::Success) return protocolError(r, "malformed DISCONNECT");
            const auto expiry = mqtt::findNumber(d.properties, mqtt::prop::SessionExpiryInterval);
            if (v5() && options_.connectSessionExpiryZero && expiry.value_or(0) != 0)
                return protocolError(rc::ProtocolError,
                                     "DISCONNECT sets Session Expiry after CONNECT had none");
            if (v5() && expiry) options_.sessionExpiry = *expiry;
            return Verdict::forward();
        }
        case PacketType::Connect:
            return protocolError(rc::ProtocolError, "second CONNECT");
        case PacketType::Auth: {
            // Only the "jwt" method is supported (CONNECT with another one is refused): an AUTH
            // without it is a protocol error (MQTT 5 §4.12).
            if (options_.authMethod.empty())
                return protocolError(rc::ProtocolError, "AUTH without authentication method");
            mqtt::AuthPacket auth;
            uint8_t r = mqtt::decodeAuth(body, frame.remainingLength, version_, auth);
            if (r != rc::Success) return protocolError(r, "malformed AUTH");
            auto method = mqtt::findString(auth.properties, mqtt::prop::AuthenticationMethod);
            if (auth.reason != rc::ReAuthenticate || method != options_.authMethod)
                return protocolError(rc::ProtocolError, "AUTH is not a jwt re-authentication");
            auto data = mqtt::findString(auth.properties, mqtt::prop::AuthenticationData);
            if (!data) return Verdict::close(rc::NotAuthorized);
            events_.onReauthenticate(std::move(*data));
            return Verdict::drop();  // the broker never sees it
        }
        default:
            return protocolError(rc::ProtocolError, "server-to-client packet from client");
    }
}

Verdict Session::deniedPublish(uint8_t qos, uint16_t packetId, bool disconnect) {
    if (disconnect) return Verdict::close(v5() ? rc::NotAuthorized : 0);
    // A retransmission (DUP) of a message forwarded before a reload revoked its topic: the
    // broker's flow for this id is open and its ack ends it; a gateway ack (and, v3, taking
    // over the PUBREL) would leave that flow, and the id, stuck.
    if (qos > 0 && inflight_.count(packetId)) return Verdict::drop();
    Verdict v = Verdict::drop();
    // v5 tells the client why; v3 has no reason codes, so it gets the success ack brokers give.
    uint8_t reason = v5() ? rc::NotAuthorized : rc::Success;
    if (qos == 1) {
        v.reply = makeAck(PacketType::Puback, version_, packetId, reason);
    } else if (qos == 2) {
        v.reply = makeAck(PacketType::Pubrec, version_, packetId, reason);
        // v5: a PUBREC >= 0x80 ends the flow. v3: the client goes on with PUBREL.
        if (!v5()) droppedClientQos2_.insert(packetId);
    }
    return v;
}

std::optional<Verdict> Session::publishRights(const mqtt::PublishView& pub,
                                              std::string_view topic) {
    const bool disconnect = options_.onPublishDenied == policy::OnPublishDenied::Disconnect;
    if (pub.qos > rights_->maxQos()) {
        events_.onRightsDenied(topic, "max_qos " + std::to_string(rights_->maxQos()),
                               "QoS above max_qos");
        return deniedPublish(pub.qos, pub.packetId, disconnect);
    }
    if (!pub.retain) return std::nullopt;
    const policy::Decision& r =
        retainDecisions_.get(topic, [&] { return rights_->checkRetain(topic); });
    if (r.allowed) return std::nullopt;
    // Not forwarded, so the broker never stores it.
    events_.onRightsDenied(topic, "retain", "retained PUBLISH outside the retain rights");
    return deniedPublish(pub.qos, pub.packetId, disconnect);
}

Verdict Session::clientPublish(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::PublishView pub;
    uint8_t r = mqtt::decodePublish(frame, body, version_, pub);
    if (r != rc::Success) return protocolError(r, "malformed PUBLISH");
    // Only a server may send a Subscription Identifier in PUBLISH (MQTT-3.3.4-6).
    if (pub.hasSubscriptionId)
        return protocolError(rc::ProtocolError, "subscription identifier in a client PUBLISH");
    if (v5() && pub.userPropertyCount > options_.maxUserProperties)
        return protocolError(rc::ImplementationSpecificError, "too many user properties");
    // Payload Format Indicator 1 promises UTF-8 text; a receiver may refuse a payload that is
    // not (MQTT 5 §3.3.2.3.2, reason 0x99) rather than pass it to consumers that trust it.
    if (pub.payloadUtf8 && !mqtt::validMqttUtf8(pub.payload))
        return protocolError(rc::PayloadFormatInvalid, "payload is not UTF-8 (payload format 1)");

    std::string_view topic = pub.topic;
    // Client topic aliases live in two tables. clientAliases_ is what the client meant: every
    // PUBLISH with a topic and an alias sets it, forwarded or not, so an alias-only PUBLISH is
    // checked against the topic the client means. aliasesAtBroker_ is what the broker maps: it
    // changes only when a packet reaches the broker. When the two differ (the re-pointing
    // PUBLISH was dropped), an allowed alias-only PUBLISH is sent with its topic, so the broker
    // delivers exactly the topic that was checked and re-points its alias to it.
    if (pub.topicAlias) {
        uint16_t alias = *pub.topicAlias;
        // The broker's CONNACK set the range; without a Topic Alias Maximum there (or before
        // the CONNACK) the client may use none (MQTT 5 §3.2.2.3.8, MQTT-3.3.2-9).
        if (alias == 0 || alias > brokerTopicAliasMax_)
            return protocolError(rc::TopicAliasInvalid, "topic alias out of range");
        if (!topic.empty()) {
            clientAliases_[alias].assign(topic);
        } else {
            auto it = clientAliases_.find(alias);
            if (it == clientAliases_.end())
                return protocolError(rc::ProtocolError, "unknown topic alias");
            topic = it->second;
        }
    }

    // A new QoS 1/2 message on an id whose flow has not completed (a retransmission carries
    // DUP) would let the gateway's ack bookkeeping of the two flows overwrite each other.
    if (pub.qos > 0 && !pub.dup && inflight_.count(pub.packetId))
        return protocolError(rc::PacketIdInUse, "PUBLISH packet identifier in use");
    if (pub.qos == 2 && droppedClientQos2_.count(pub.packetId) && !pub.dup)
        droppedClientQos2_.erase(pub.packetId);  // a new message reusing the id

    // What the CONNACK announced binds the client whatever the topic (MQTT 5 §3.2.2.3.4/5).
    if (v5() && pub.qos > announcedMaxQos_) {
        events_.onRightsDenied(topic, "max_qos " + std::to_string(announcedMaxQos_),
                               "QoS above the announced Maximum QoS");
        return Verdict::close(rc::QosNotSupported);
    }
    if (v5() && pub.retain && announcedNoRetain_) {
        events_.onRightsDenied(topic, "retain", "retained PUBLISH after Retain Available 0");
        return Verdict::close(rc::RetainNotSupported);
    }
    const policy::Decision& d =
        publishDecisions_.get(topic, [&] { return rights_->checkPublish(topic); });
    if (!d.allowed) {
        events_.onAuthzDenied("publish", topic, d);
        return deniedPublish(pub.qos, pub.packetId,
                             options_.onPublishDenied == policy::OnPublishDenied::Disconnect);
    }
    if (std::optional<Verdict> denied = publishRights(pub, topic)) return std::move(*denied);
    size_t trailer = 0;  // v3 signature trailer to strip
    if (options_.integrity) {
        integrity::Checker::Outcome o =
            options_.integrity->check(topic, pub.payload, pub.properties, v5());
        if (o.matched() && o.failure != integrity::Failure::None) {
            const integrity::RuleSpec& rule = options_.integrity->rule(o.rule);
            events_.onIntegrityDenied(topic, rule.name, integrity::failureReason(o.failure));
            return deniedPublish(pub.qos, pub.packetId, rule.disconnect);
        }
        trailer = o.trailer;
    }
    if (pub.qos > 0) {
        if (!inflight_.count(pub.packetId) && inflight_.size() >= options_.maxInflight)
            return protocolError(rc::ReceiveMaximumExceeded, "too many in-flight publishes");
    }
    // An alias-only PUBLISH whose alias the broker maps elsewhere carries its topic onward.
    mqtt::PublishView onward = pub;
    std::string* atBroker = pub.topicAlias ? &aliasesAtBroker_[*pub.topicAlias] : nullptr;
    const bool sendTopic = atBroker && pub.topic.empty() && *atBroker != topic;
    if (sendTopic) onward.topic = topic;
    // Re-encode only when something changes: a v3 trailer to strip, an identity to stamp, a
    // topic to send along.
    Verdict v = Verdict::forward();
    if (trailer != 0 || !stampProperty_.empty() || sendTopic) {
        v = Verdict::replace({});
        if (!integrity::rewritePublish(frame, onward, v5(),
                                       pub.payload.substr(0, pub.payload.size() - trailer),
                                       stampProperty_, v.onward))
            return protocolError(rc::PacketTooLarge, "PUBLISH too large to re-encode");
    }
    // Forwarded: from here on the broker's state changes, and the gateway's with it.
    if (pub.qos > 0) inflight_.insert(pub.packetId);
    if (atBroker) atBroker->assign(topic);
    return v;
}

Verdict Session::clientSubscribe(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::SubscribePacket sub;
    uint8_t r = mqtt::decodeSubscribe(body, frame.remainingLength, version_, sub);
    if (r != rc::Success) return protocolError(r, "malformed SUBSCRIBE");
    // Its state (filters to record, codes to merge) is per packet id: a second SUBSCRIBE on an
    // id still awaiting its SUBACK would overwrite the first's (MQTT-2.2.1-3: not allowed).
    if (subscriptions_.idInUse(sub.packetId))
        return protocolError(rc::PacketIdInUse, "SUBSCRIBE packet identifier in use");

    const uint8_t deniedCode = v5() ? rc::NotAuthorized : 0x80;
    // What each of the client's filters gets in the SUBACK: a code of the gateway's own
    // (< kFromBroker), or kFromBroker + k, the broker's code for the k-th forwarded filter.
    std::vector<uint32_t> slots(sub.subscriptions.size(), 0);
    std::vector<size_t> forwarded;  // indexes into sub.subscriptions, in order
    // A filter named twice in one packet goes to the broker once (with its last options, as
    // the broker would apply them in order) and both entries get its code: copies would make
    // the broker send its retained messages once per copy, an amplifier no limit counted.
    std::unordered_map<std::string_view, size_t> slotOf;
    size_t denied = 0;
    // Filters this packet adds: they count against the limit as soon as it is forwarded, as
    // do those of SUBSCRIBEs still awaiting their SUBACK.
    std::unordered_set<std::string_view> newOnes;
    for (size_t i = 0; i < sub.subscriptions.size(); ++i) {
        const std::string& filter = sub.subscriptions[i].filter;
        if (auto seen = slotOf.find(filter); seen != slotOf.end()) {
            slots[i] = slots[seen->second];
            if (slots[i] >= kFromBroker)
                forwarded[slots[i] - kFromBroker] = i;
            else
                ++denied;
            continue;
        }
        slotOf.emplace(filter, i);
        // A grant over a denied branch is filtered at delivery (brokerPublish), so it needs
        // the per-message check: checkSubscription refuses it when that is off.
        policy::SubscribeDecision d = rights_->checkSubscription(filter, options_.checkDeliveries);
        if (d.outcome == policy::SubscribeOutcome::GrantFiltered) withholding_ = true;
        if (!d.allowed()) {
            events_.onAuthzDenied("subscribe", filter, d.decision);
            slots[i] = deniedCode;
            ++denied;
            continue;
        }
        const bool known = subscriptions_.contains(filter) || newOnes.count(filter);
        if (!known && subscriptions_.size() + newOnes.size() >= options_.maxSubscriptions) {
            events_.onSubscriptionLimit(filter);
            slots[i] = v5() ? rc::QuotaExceeded : 0x80;
            ++denied;
            continue;
        }
        if (!known) newOnes.insert(filter);
        slots[i] = kFromBroker + static_cast<uint32_t>(forwarded.size());
        forwarded.push_back(i);
    }

    if (forwarded.empty()) {
        // Nothing left for the broker: the gateway answers alone.
        mqtt::SubackPacket ack;
        ack.packetId = sub.packetId;
        ack.codes.assign(slots.begin(), slots.end());
        Verdict v = Verdict::drop();
        v.reply = mqtt::encodeSuback(ack, version_);
        return v;
    }
    std::vector<std::string> granted;
    for (size_t i : forwarded) granted.push_back(sub.subscriptions[i].filter);
    subscriptions_.subscribeSent(sub.packetId, granted);
    // A subscription above max_qos is granted at max_qos: the broker is asked for no more, so
    // its SUBACK and its deliveries agree with what the client is told.
    const uint8_t maxQos = rights_->maxQos();
    bool lowered = false;
    for (size_t i : forwarded) lowered |= sub.subscriptions[i].qos() > maxQos;
    if (denied == 0 && !lowered && forwarded.size() == sub.subscriptions.size())
        return Verdict::forward();

    mqtt::SubscribePacket onward = sub;
    onward.subscriptions.clear();
    for (size_t i : forwarded) {
        mqtt::Subscription s = sub.subscriptions[i];
        if (s.qos() > maxQos) s.options = static_cast<uint8_t>((s.options & ~0x03) | maxQos);
        onward.subscriptions.push_back(std::move(s));
    }
    if (denied != 0 || forwarded.size() != sub.subscriptions.size()) {
        pendingSubackCodes_ += slots.size();
        pendingSubacks_[sub.packetId] = std::move(slots);
    }
    return Verdict::replace(mqtt::encodeSubscribe(onward, version_));
}

Verdict Session::clientUnsubscribe(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::UnsubscribePacket unsub;
    uint8_t r = mqtt::decodeUnsubscribe(body, frame.remainingLength, version_, unsub);
    if (r != rc::Success) return protocolError(r, "malformed UNSUBSCRIBE");
    if (subscriptions_.idInUse(unsub.packetId))
        return protocolError(rc::PacketIdInUse, "UNSUBSCRIBE packet identifier in use");
    // The id is remembered until its UNSUBACK, so a gateway UNSUBSCRIBE never borrows it
    // (bounded: one per packet id).
    subscriptions_.unsubscribeSent(unsub.packetId, unsub.filters);
    return Verdict::forward();
}

Verdict Session::clientAck(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::AckPacket ack;
    uint8_t r = mqtt::decodeAck(frame.type(), body, frame.remainingLength, version_, ack);
    if (r != rc::Success) return protocolError(r, "malformed acknowledgement");
    if (ack.type == PacketType::Pubrel && droppedClientQos2_.erase(ack.packetId)) {
        Verdict v = Verdict::drop();
        v.reply = makeAck(PacketType::Pubcomp, version_, ack.packetId, rc::Success);
        return v;
    }
    return Verdict::forward();
}

// ---------------------------------------------------------------- broker -> client

Verdict Session::brokerMalformed(const char* detail) {
    events_.onBackendMalformed(detail);
    return Verdict::close(rc::UnspecifiedError);
}

Verdict Session::onBrokerPacket(const mqtt::Frame& frame, const uint8_t* body) {
    // What the gateway cannot read it cannot check, and its tables (aliases, subscriptions,
    // flows) would stop matching the broker's: such a packet ends the session.
    if (!mqtt::validFixedHeaderFlags(frame, version_))
        return brokerMalformed("reserved fixed-header flags");
    switch (frame.type()) {
        case PacketType::Publish:
            return brokerPublish(frame, body);
        case PacketType::Suback:
            return brokerSuback(frame, body);
        case PacketType::Unsuback:
            return brokerUnsuback(frame, body);
        case PacketType::Puback:
        case PacketType::Pubrec:
        case PacketType::Pubrel:
        case PacketType::Pubcomp:
            return brokerAck(frame, body);
        case PacketType::Connack:
            return brokerConnack(frame, body);
        case PacketType::Pingresp:
            if (frame.remainingLength != 0) return brokerMalformed("PINGRESP body");
            return Verdict::forward();
        case PacketType::Disconnect: {
            mqtt::DisconnectPacket d;
            if (!v5() ||
                mqtt::decodeDisconnect(body, frame.remainingLength, version_, d) != rc::Success)
                return brokerMalformed("malformed DISCONNECT");
            return Verdict::forward();
        }
        default:
            return brokerMalformed("packet type a broker never sends");
    }
}

Verdict Session::brokerConnack(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::ConnackPacket ack;
    if (mqtt::decodeConnack(body, frame.remainingLength, version_, ack) != rc::Success) {
        // A broker that speaks only MQTT 3.1.1 refuses a v5 CONNECT with a 3.1.1 CONNACK
        // (return code 1..5, no properties; 3.1.1 §3.1.2.2) and closes. It sets no state to
        // check, and v5 clients read it as the signal to fall back: relay it as it is.
        if (v5() && frame.remainingLength == 2 && body[0] == 0 && body[1] >= 1 && body[1] <= 5)
            return Verdict::forward();
        return brokerMalformed("malformed CONNACK");
    }
    // A resumed session brings subscriptions made on earlier connections (perhaps under an
    // older policy, or before a reload this connection never saw): what they deliver must be
    // checked, whatever check_deliveries says.
    resumedSession_ = ack.sessionPresent;
    if (ack.sessionPresent && ack.code == 0) subscriptions_.adopt(options_.storedSubscriptions);
    options_.storedSubscriptions.clear();
    if (!v5()) return Verdict::forward();
    brokerTopicAliasMax_ =
        mqtt::findNumber(ack.properties, mqtt::prop::TopicAliasMaximum).value_or(0);
    // The broker may grant another Session Expiry than the client asked for (MQTT 5 3.2.2.3.2).
    if (auto expiry = mqtt::findNumber(ack.properties, mqtt::prop::SessionExpiryInterval);
        expiry && ack.code < 0x80)
        options_.sessionExpiry = *expiry;
    bool changed = false;
    // The broker saw the clamped keepalive as the client's own, so it will not announce it:
    // the gateway does (MQTT 5 §3.2.2.3.14), unless the broker chose an even shorter one.
    if (options_.serverKeepAlive != 0 && ack.code < 0x80 &&
        !mqtt::findNumber(ack.properties, mqtt::prop::ServerKeepAlive)) {
        ack.properties.push_back(
            mqtt::Property::integer(mqtt::prop::ServerKeepAlive, options_.serverKeepAlive));
        changed = true;
    }
    // The broker never saw the client's Authentication Method (the gateway authenticated):
    // the CONNACK carries the client's own back (MQTT 5 §3.2.2.3.17), and nothing the broker
    // may have said about authentication.
    if (!options_.authMethod.empty()) {
        auto& props = ack.properties;
        props.erase(std::remove_if(props.begin(), props.end(),
                                   [](const mqtt::Property& p) {
                                       return p.id == mqtt::prop::AuthenticationMethod ||
                                              p.id == mqtt::prop::AuthenticationData;
                                   }),
                    props.end());
        props.push_back(
            mqtt::Property::string(mqtt::prop::AuthenticationMethod, options_.authMethod));
        changed = true;
    }
    if (ack.code < 0x80) {
        // Retain and QoS rights (CONTRACT §3): the lower of the broker's and the identity's.
        announcedMaxQos_ = static_cast<uint8_t>(std::min<uint32_t>(
            2, mqtt::findNumber(ack.properties, mqtt::prop::MaximumQos).value_or(2)));
        announcedNoRetain_ =
            mqtt::findNumber(ack.properties, mqtt::prop::RetainAvailable).value_or(1) == 0;
        if (rights_->maxQos() < announcedMaxQos_) {
            announcedMaxQos_ = rights_->maxQos();
            std::erase_if(ack.properties,
                          [](const mqtt::Property& p) { return p.id == mqtt::prop::MaximumQos; });
            ack.properties.push_back(
                mqtt::Property::integer(mqtt::prop::MaximumQos, announcedMaxQos_));
            changed = true;
        }
        if (!announcedNoRetain_ && rights_->retainRestricted() && !rights_->hasAnyRetain()) {
            announcedNoRetain_ = true;
            std::erase_if(ack.properties, [](const mqtt::Property& p) {
                return p.id == mqtt::prop::RetainAvailable;
            });
            ack.properties.push_back(mqtt::Property::integer(mqtt::prop::RetainAvailable, 0));
            changed = true;
        }
    }
    if (!changed) return Verdict::forward();
    return Verdict::replace(
        mqtt::encodeConnack(version_, ack.sessionPresent, ack.code, ack.properties));
}

Verdict Session::brokerPublish(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::PublishView pub;
    uint8_t r = mqtt::decodePublish(frame, body, version_, pub);
    if (r != rc::Success) return brokerMalformed("malformed PUBLISH");

    std::string_view topic = pub.topic;
    bool aliasOnly = false;
    if (pub.topicAlias) {
        if (!topic.empty()) {
            brokerAliases_[*pub.topicAlias].assign(topic);
            clientKnowsBrokerAlias_.erase(*pub.topicAlias);
        } else {
            auto it = brokerAliases_.find(*pub.topicAlias);
            if (it == brokerAliases_.end())
                return brokerMalformed("PUBLISH with an unknown topic alias");
            topic = it->second;
            aliasOnly = true;
        }
    }

    if (options_.checkDeliveries || resumedSession_ || withholding_) {
        const policy::Decision& d =
            deliveryDecisions_.get(topic, [&] { return rights_->checkDelivery(topic); });
        if (!d.allowed) {
            events_.onAuthzDenied("deliver", topic, d);
            Verdict v = Verdict::drop();
            // Acknowledge to the broker so its session state moves on.
            if (pub.qos == 1) {
                v.reply = makeAck(PacketType::Puback, version_, pub.packetId, rc::Success);
            } else if (pub.qos == 2) {
                v.reply = makeAck(PacketType::Pubrec, version_, pub.packetId, rc::Success);
                blockedDeliveryQos2_.insert(pub.packetId);
            }
            return v;
        }
    }
    if (pub.topicAlias) {
        if (aliasOnly && !clientKnowsBrokerAlias_.count(*pub.topicAlias)) {
            // The client never saw this alias' mapping (its first use was blocked): send the
            // topic along so the client can resolve it.
            mqtt::PublishPacket full = mqtt::toPublishPacket(pub);
            full.topic.assign(topic);
            clientKnowsBrokerAlias_.insert(*pub.topicAlias);
            return Verdict::replace(mqtt::encodePublish(full, version_));
        }
        clientKnowsBrokerAlias_.insert(*pub.topicAlias);
    }
    return Verdict::forward();
}

Verdict Session::brokerSuback(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::SubackPacket ack;
    if (mqtt::decodeSuback(body, frame.remainingLength, version_, ack) != rc::Success)
        return brokerMalformed("malformed SUBACK");
    const uint16_t id = ack.packetId;
    if (!subscriptions_.idInUse(id)) return Verdict::forward();
    auto merge = pendingSubacks_.find(id);
    // Undo what the broker refused (codes >= 0x80); granted filters were counted when sent.
    subscriptions_.subackReceived(id, ack.codes);
    if (merge == pendingSubacks_.end()) return Verdict::forward();

    std::vector<uint32_t> slots = std::move(merge->second);
    pendingSubackCodes_ -= slots.size();
    pendingSubacks_.erase(merge);
    std::vector<uint8_t> codes;
    codes.reserve(slots.size());
    for (uint32_t slot : slots) {
        if (slot < kFromBroker) {
            codes.push_back(static_cast<uint8_t>(slot));
        } else {
            const size_t k = slot - kFromBroker;
            codes.push_back(k < ack.codes.size() ? ack.codes[k] : 0x80);
        }
    }
    ack.codes = std::move(codes);
    return Verdict::replace(mqtt::encodeSuback(ack, version_));
}

Verdict Session::brokerUnsuback(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::UnsubackPacket ack;
    if (mqtt::decodeUnsuback(body, frame.remainingLength, version_, ack) != rc::Success)
        return brokerMalformed("malformed UNSUBACK");
    const uint16_t id = ack.packetId;
    if (gatewayUnsubscribes_.erase(id)) return Verdict::drop();
    subscriptions_.unsubackReceived(id);
    return Verdict::forward();
}

Verdict Session::brokerAck(const mqtt::Frame& frame, const uint8_t* body) {
    mqtt::AckPacket ack;
    if (mqtt::decodeAck(frame.type(), body, frame.remainingLength, version_, ack) != rc::Success)
        return brokerMalformed("malformed acknowledgement");
    const uint16_t id = ack.packetId;
    switch (frame.type()) {
        case PacketType::Pubrel:
            if (blockedDeliveryQos2_.erase(id)) {
                Verdict v = Verdict::drop();
                v.reply = makeAck(PacketType::Pubcomp, version_, id, rc::Success);
                return v;
            }
            break;
        case PacketType::Puback:
        case PacketType::Pubcomp:
            inflight_.erase(id);
            break;
        case PacketType::Pubrec:
            // v5: a failing PUBREC ends the flow; otherwise PUBCOMP will.
            if (ack.reason >= 0x80) inflight_.erase(id);
            break;
        default:
            break;
    }
    return Verdict::forward();
}

// ---------------------------------------------------------------- reload

std::vector<std::string> Session::replaceRights(
    std::shared_ptr<const policy::ClientRights> rights) {
    publishDecisions_.clear();
    deliveryDecisions_.clear();
    retainDecisions_.clear();
    rights_ = std::move(rights);
    // Filters still awaiting their SUBACK are the broker's too: the gateway's UNSUBSCRIBE
    // reaches the broker after their SUBSCRIBE, so it removes them all the same.
    return subscriptions_.revoke([this](const std::string& f) {
        const policy::SubscribeDecision d = rights_->checkSubscription(f, options_.checkDeliveries);
        if (d.outcome == policy::SubscribeOutcome::GrantFiltered) withholding_ = true;
        return d.allowed();
    });
}

std::vector<uint8_t> Session::makeUnsubscribe(const std::vector<std::string>& filters) {
    // The gateway's packet ids share the client's identifier space at the broker: count down
    // from 0xFFFF (clients almost always count up from 1) and skip any id the client has in
    // flight (a SUBSCRIBE awaiting its SUBACK, an UNSUBSCRIBE awaiting its UNSUBACK, a QoS 1/2
    // PUBLISH) or that an earlier gateway UNSUBSCRIBE still holds.
    auto inUse = [this](uint16_t id) {
        return subscriptions_.idInUse(id) || inflight_.count(id) || gatewayUnsubscribes_.count(id);
    };
    for (uint32_t tries = 0; tries < 0xFFFF; ++tries) {
        const uint16_t id = nextGatewayPacketId_;
        nextGatewayPacketId_ = id == 1 ? 0xFFFF : id - 1;
        if (inUse(id)) continue;
        gatewayUnsubscribes_.insert(id);
        mqtt::UnsubscribePacket unsub;
        unsub.packetId = id;
        unsub.filters = filters;
        return mqtt::encodeUnsubscribe(unsub, version_);
    }
    return {};  // every id in use: the caller cannot unsubscribe now
}

}  // namespace moat::inspect
