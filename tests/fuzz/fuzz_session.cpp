// Fuzzes inspect::Session in both directions: a stream of client->broker and broker->client
// packets against a policy with a denied branch under a broad subscribe right.
//
// Input: one options byte (bits 0-1: protocol 0 = 3.1, 1 = 3.1.1, else 5; bit 2:
// check_deliveries off; bit 3: on_publish_denied disconnect), then records of one direction
// byte (bit 0: 0 = from the client, 1 = from the broker) and one MQTT packet.
//
// Invariants (abort on violation):
//   - never forward a client PUBLISH whose topic (aliases resolved) the rights deny;
//   - never deliver a broker PUBLISH whose topic the rights deny, in particular one on a
//     withheld branch (deny_subscribe under a granted `#`), when deliveries are checked;
//   - never forward a SUBSCRIBE filter that checkSubscription refuses;
//   - a PUBLISH passed on with an alias only has a topic the model knows for that alias.
// The topic-alias model here is independent of the Session's own maps: an alias means what the
// sender last set it to (a PUBLISH passed on with an alias only must be checked as that).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/inspect/Session.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Frame.h"
#include "policy/Policy.h"

using namespace moat;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

struct NullEvents : inspect::SessionEvents {
    void onAuthzDenied(const char*, std::string_view, const policy::Decision&) override {}
    void onProtocolError(uint8_t, const char*) override {}
    void onSubscriptionLimit(std::string_view) override {}
};

std::shared_ptr<const policy::Policy> makePolicy() {
    policy::PolicySpec spec;
    spec.defaultRoles = {"fleet"};
    spec.roles.push_back({"fleet",
                          {"devices/%u/#", "test/#", "a/#"},
                          {"#", "$SYS/broker/#"},
                          {"devices/%u/locked"},
                          {"test/nosubscribe", "devices/+/secret/#", "a/+/b"}});
    std::vector<std::string> errors;
    auto p = policy::Policy::compile(spec, errors);
    check(p != nullptr && errors.empty());
    return p;
}

const std::shared_ptr<const policy::Policy>& policyOnce() {
    static const auto p = makePolicy();
    return p;
}

// The topic a PUBLISH stands for, given the alias model; false when it cannot be resolved.
bool resolve(const mqtt::PublishView& pub, const std::unordered_map<uint16_t, std::string>& model,
             std::string& topic) {
    if (!pub.topic.empty()) {
        topic.assign(pub.topic);
        return true;
    }
    if (!pub.topicAlias) return false;
    auto it = model.find(*pub.topicAlias);
    if (it == model.end()) return false;
    topic = it->second;
    return true;
}

// Decodes one whole packet held in `bytes` (a Replace verdict's onward packet).
bool parseWhole(const std::vector<uint8_t>& bytes, mqtt::Frame& frame) {
    return mqtt::parseFrame(bytes.data(), bytes.size(), frame) == mqtt::FrameStatus::Ok &&
           frame.totalSize() == bytes.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t opts = data[0];
    const mqtt::ProtocolVersion version = (opts & 3) == 0   ? mqtt::ProtocolVersion::V31
                                          : (opts & 3) == 1 ? mqtt::ProtocolVersion::V311
                                                            : mqtt::ProtocolVersion::V5;
    inspect::SessionOptions options;
    options.checkDeliveries = !(opts & 4);
    options.onPublishDenied =
        (opts & 8) ? policy::OnPublishDenied::Disconnect : policy::OnPublishDenied::Drop;
    options.maxSubscriptions = 8;
    options.maxInflight = 16;
    auto rights = policyOnce()->rightsFor("d1", "c1");
    NullEvents events;
    inspect::Session session(version, rights, options, events);

    std::unordered_map<uint16_t, std::string> clientAliases, brokerAliases;
    size_t off = 1;
    for (int packets = 0; off + 1 < size && packets < 256; ++packets) {
        const bool fromBroker = data[off] & 1;
        ++off;
        mqtt::Frame frame;
        if (mqtt::parseFrame(data + off, size - off, frame) != mqtt::FrameStatus::Ok) break;
        if (frame.totalSize() > size - off) break;
        const uint8_t* body = data + off + frame.headerSize;
        off += frame.totalSize();

        const inspect::Verdict v =
            fromBroker ? session.onBrokerPacket(frame, body) : session.onClientPacket(frame, body);
        if (v.kind == inspect::Verdict::Kind::Close) break;
        const bool passed =
            v.kind == inspect::Verdict::Kind::Forward || v.kind == inspect::Verdict::Kind::Replace;

        if (frame.type() == mqtt::PacketType::Publish) {
            mqtt::PublishView pub;
            // The Session closes on an undecodable PUBLISH in both directions.
            check(mqtt::decodePublish(frame, body, version, pub) == mqtt::reason::Success);
            auto& model = fromBroker ? brokerAliases : clientAliases;
            std::string topic;
            const bool known = resolve(pub, model, topic);
            // A receiver takes the mapping of every PUBLISH it gets: the alias means that topic
            // from now on, in both directions, whether the gateway passed the packet or not.
            if (pub.topicAlias && !pub.topic.empty())
                model[*pub.topicAlias] = std::string(pub.topic);
            if (!passed) continue;
            // Never passed on unresolved.
            check(known);
            if (fromBroker) {
                if (options.checkDeliveries) check(rights->checkDelivery(topic).allowed);
            } else {
                check(rights->checkPublish(topic).allowed);
            }
            if (v.kind == inspect::Verdict::Kind::Replace) {
                mqtt::Frame f2;
                check(parseWhole(v.onward, f2) && f2.type() == mqtt::PacketType::Publish);
                mqtt::PublishView onward;
                check(mqtt::decodePublish(f2, v.onward.data() + f2.headerSize, version, onward) ==
                      mqtt::reason::Success);
                check(onward.topic.empty() || onward.topic == topic);
            }
        } else if (frame.type() == mqtt::PacketType::Subscribe && !fromBroker && passed) {
            mqtt::SubscribePacket sub;
            if (v.kind == inspect::Verdict::Kind::Replace) {
                mqtt::Frame f2;
                check(parseWhole(v.onward, f2));
                check(mqtt::decodeSubscribe(v.onward.data() + f2.headerSize, f2.remainingLength,
                                            version, sub) == mqtt::reason::Success);
            } else {
                check(mqtt::decodeSubscribe(body, frame.remainingLength, version, sub) ==
                      mqtt::reason::Success);
            }
            for (const auto& s : sub.subscriptions)
                check(rights->checkSubscription(s.filter, options.checkDeliveries).allowed());
        }
    }
    return 0;
}
