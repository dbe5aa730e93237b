// Fuzzes inspect::ConnectionPipeline as the network layer drives it: CONNECT (with the password
// job answered at once), the backend, packets both ways, timer ticks and reloads that swap the
// policy between two rule sets, on a fake clock.
//
// Input: one options byte (bits 0-1: CONNECT from the input as is, else nothing; bit 2:
// check_deliveries off; bit 3: on_exceed disconnect; bit 4: publish_rate 2/s; bit 5: the
// password job fails), then records of one control byte and, for packets, one MQTT packet:
//   control & 3 == 0  a client packet (the first one goes to onConnect)
//   control & 3 == 1  a broker packet
//   control & 3 == 2  a reload: policy A <-> B
//   control & 3 == 3  a timer tick
//   control >> 2      milliseconds x 64 the clock advances first
//
// Invariant (abort on violation): never forward a packet the rights deny. A client PUBLISH
// passed on (forward or replace) has a topic (aliases resolved) the current rights allow; a
// SUBSCRIBE passed on only has filters they allow; the will the broker gets at CONNECT has a
// topic they allow; after Close / CloseNow nothing more is asked of the pipeline.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>

#include "gateway/inspect/ConnectionPipeline.h"
#include "gateway/mqtt/Decoder.h"
#include "gateway/mqtt/Frame.h"
#include "policy/Policy.h"

using namespace moat;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

struct NullEvents : inspect::PipelineEvents {
    void audit(const char*, const char*, std::string_view, std::string_view, std::string_view,
               std::optional<uint64_t>) override {}
    void warn(const std::string&) override {}
    void authzDenied(std::string_view) override {}
    void rateLimited(std::string_view) override {}
    void protocolError(std::string_view) override {}
    void authCounted(std::string_view, bool) override {}
    void backendUnreachable() override {}
    void backendConnack(bool) override {}
    bool addressBanned() override { return false; }
    bool identityBanned(const std::string&) override { return false; }
    void authFailed(std::string_view, const std::string&) override {}
    void loggedIn(const std::string&) override {}
    void deniedTopic(std::string_view) override {}
    void publishAdmitted(uint64_t) override {}
    void shareKick(const std::string&, KickWhy) override {}
};

std::shared_ptr<const policy::Policy> compile(std::vector<std::string> publish,
                                              std::vector<std::string> subscribe,
                                              std::vector<std::string> denyPublish,
                                              std::vector<std::string> denySubscribe) {
    policy::PolicySpec spec;
    spec.defaultRoles = {"fleet"};
    spec.roles.push_back({"fleet", std::move(publish), std::move(subscribe), std::move(denyPublish),
                          std::move(denySubscribe)});
    std::vector<std::string> errors;
    auto p = policy::Policy::compile(spec, errors);
    check(p != nullptr && errors.empty());
    return p;
}

std::shared_ptr<inspect::PipelineOptions> options(uint8_t opts, bool policyB) {
    static const auto a = compile({"devices/%u/#", "test/#", "a/#"}, {"#"}, {"devices/%u/locked"},
                                  {"test/nosubscribe", "devices/+/secret/#"});
    static const auto b = compile({"devices/%u/up"}, {"devices/%u/#"}, {}, {});
    static const auto passwords = [] {
        std::vector<std::string> errors;
        // Never verified here: the job's answer comes from the options byte.
        auto f = policy::PasswordFile::parse("c1:" + policy::hashPassword("pw", 1000) + "\n",
                                             "fuzz", errors);
        return f ? std::make_shared<const policy::PasswordFile>(std::move(*f)) : nullptr;
    }();
    auto o = std::make_shared<inspect::PipelineOptions>();
    o->auth = std::make_shared<config::AuthConfig>();
    o->policy = policyB ? b : a;
    o->passwords = passwords;
    o->checkDeliveries = !(opts & 4);
    o->limiter.disconnectOnExceed = opts & 8;
    o->limiter.publishRate = (opts & 16) ? 2 : 0;
    o->maxSubscriptions = 8;
    o->maxInflight = 16;
    o->maxPacketSize = 4096;
    return o;
}

bool parseWhole(const std::vector<uint8_t>& bytes, mqtt::Frame& frame) {
    return mqtt::parseFrame(bytes.data(), bytes.size(), frame) == mqtt::FrameStatus::Ok &&
           frame.totalSize() == bytes.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t opts = data[0];
    bool policyB = false;
    NullEvents events;
    uint64_t now = 0;
    inspect::ConnectionPipeline p(options(opts, policyB), events, now);
    inspect::ConnectContext ctx;
    ctx.cert.presented = true;
    ctx.cert.identity = "d1";
    using Stage = inspect::ConnectionPipeline::Stage;
    using AK = inspect::Action::Kind;
    std::unordered_map<uint16_t, std::string> aliases;  // client -> broker, as the client set them

    auto rights = [&] { return p.options().policy->rightsFor(p.identity(), p.clientId()); };
    // Carries out a control action the way the network layer does; false: closed.
    auto act = [&](inspect::Action a) {
        for (int rounds = 0; rounds < 4 && a.kind == AK::Await; ++rounds) {
            inspect::JobResult r;
            r.status = (opts & 32) ? inspect::JobResult::Status::BadPassword
                                   : inspect::JobResult::Status::Ok;
            r.checked = a.job->passwords;
            a = p.onJobDone(r, now);
        }
        if (a.kind == AK::OpenBackend) {
            a = p.onBackendConnected(now);
            mqtt::Frame f;
            check(parseWhole(a.toBroker, f) && f.type() == mqtt::PacketType::Connect);
            mqtt::ConnectPacket c;
            check(mqtt::decodeConnect(a.toBroker.data() + f.headerSize, f.remainingLength, c) == 0);
            if (c.willFlag) check(rights()->checkPublish(c.willTopic).allowed);
        }
        return !a.closes() && p.stage() != Stage::Closed;
    };

    size_t off = 1;
    for (int records = 0; off < size && records < 256; ++records) {
        const uint8_t control = data[off++];
        now += static_cast<uint64_t>(control >> 2) * 64;
        const int kind = control & 3;
        if (kind == 2) {
            policyB = !policyB;
            if (!act(p.onReload(options(opts, policyB), std::nullopt, now))) return 0;
            continue;
        }
        if (kind == 3) {
            if (!act(p.onTimer(now))) return 0;
            continue;
        }
        mqtt::Frame frame;
        if (off >= size || mqtt::parseFrame(data + off, size - off, frame) != mqtt::FrameStatus::Ok)
            break;
        if (frame.totalSize() > size - off) break;
        const uint8_t* whole = data + off;
        const uint8_t* body = whole + frame.headerSize;
        off += frame.totalSize();
        if (kind == 1) {
            if (p.stage() != Stage::Established) continue;
            const inspect::Verdict v = p.onBrokerPacket(frame, body, now);
            if (v.kind == inspect::Verdict::Kind::Close || v.endAfter) return 0;
            continue;
        }
        if (p.stage() == Stage::AwaitConnect) {
            if (!act(p.onConnect(frame, body, whole, ctx, now))) return 0;
            continue;
        }
        if (p.stage() != Stage::Established) continue;
        if (p.onClientHeader(frame).closes()) return 0;
        const inspect::Verdict v = p.onClientPacket(frame, body, now);
        if (v.kind == inspect::Verdict::Kind::Close) return 0;
        if (v.kind == inspect::Verdict::Kind::Hold) continue;  // stays buffered: not passed
        const bool passed =
            v.kind == inspect::Verdict::Kind::Forward || v.kind == inspect::Verdict::Kind::Replace;
        const mqtt::ProtocolVersion version =
            p.v5() ? mqtt::ProtocolVersion::V5 : mqtt::ProtocolVersion::V311;
        if (frame.type() == mqtt::PacketType::Publish) {
            mqtt::PublishView pub;
            if (mqtt::decodePublish(frame, body, version, pub) != 0) continue;
            std::string topic(pub.topic);
            bool known = !pub.topic.empty();
            if (!known && pub.topicAlias) {
                auto it = aliases.find(*pub.topicAlias);
                known = it != aliases.end();
                if (known) topic = it->second;
            }
            if (pub.topicAlias && !pub.topic.empty())
                aliases[*pub.topicAlias] = std::string(pub.topic);
            if (!passed) continue;
            check(known);
            check(rights()->checkPublish(topic).allowed);
        } else if (frame.type() == mqtt::PacketType::Subscribe && passed) {
            mqtt::SubscribePacket sub;
            if (v.kind == inspect::Verdict::Kind::Replace) {
                mqtt::Frame f2;
                check(parseWhole(v.onward, f2));
                check(mqtt::decodeSubscribe(v.onward.data() + f2.headerSize, f2.remainingLength,
                                            version, sub) == 0);
            } else if (mqtt::decodeSubscribe(body, frame.remainingLength, version, sub) != 0) {
                continue;
            }
            for (const auto& s : sub.subscriptions)
                check(rights()->checkSubscription(s.filter, p.options().checkDeliveries).allowed());
        }
        if (v.endAfter) return 0;
    }
    return 0;
}
