// ConnectionPipeline and issue 22: client-id ownership at CONNECT (claim, refusal, release with
// the session's expiry on close), will retain / QoS rights, rights announced in the CONNACK.
#include <catch2/catch.hpp>

#include "PipelineHarness.h"
#include "gateway/inspect/OwnershipTable.h"

using namespace moat;
using namespace moat::inspect;
using namespace moat::test;
using mqtt::ProtocolVersion;
using K = Action::Kind;

namespace {

// RecordingEvents with a real OwnershipTable behind the ownership events (fake clock).
struct OwnerEvents : RecordingEvents {
    OwnershipTable& table;
    OwnershipTable::TimePoint now{};
    std::vector<std::string> released;  // "client|identity|expiry or -"
    explicit OwnerEvents(OwnershipTable& t) : table(t) {}
    OwnershipTable::Claim claimClientId(const std::string& c, const std::string& i) override {
        return table.claim(c, i, now);
    }
    void releaseClientId(const std::string& c, const std::string& i, std::optional<uint32_t> e,
                         std::vector<std::string> subs) override {
        released.push_back(c + "|" + i + "|" + (e ? std::to_string(*e) : "-"));
        table.release(c, i, e, now, std::move(subs));
    }
    void clientIdRefused() override { counts["client_id_refused"]++; }
};

uint8_t connackCode(const Action& a) {
    REQUIRE(a.kind == K::Close);
    REQUIRE(a.toClient.size() >= 4);
    return a.toClient[3];
}

mqtt::ConnectPacket persistentConnect(ProtocolVersion v, const std::string& cid) {
    auto c = connectPacket(v, cid);
    c.cleanStart = false;
    if (v == ProtocolVersion::V5)
        c.properties.push_back(mqtt::Property::integer(mqtt::prop::SessionExpiryInterval, 600));
    return c;
}

void accept(ConnectionPipeline& p, ProtocolVersion v) {
    REQUIRE(!p.onBackendConnected(0).toBroker.empty());
    REQUIRE(fromBroker(p, mqtt::encodeConnack(v, false, 0, {}), 0).kind != Verdict::Kind::Close);
}

}  // namespace

TEST_CASE("pipeline: another identity's CONNECT with an owned client id is refused") {
    for (ProtocolVersion v : {ProtocolVersion::V311, ProtocolVersion::V5}) {
        OwnershipTable table(std::chrono::hours(1));
        OwnerEvents ev(table);
        ConnectionPipeline owner(makeOptions(), ev, 0);
        REQUIRE(sendConnect(owner, persistentConnect(v, "shared"), withCert("sensor-1")).kind ==
                K::OpenBackend);
        accept(owner, v);
        ConnectionPipeline thief(makeOptions(), ev, 0);
        Action a = sendConnect(thief, persistentConnect(v, "shared"), withCert("sensor-2"));
        CHECK(connackCode(a) == (v == ProtocolVersion::V5 ? 0x85 : 0x02));
        CHECK(ev.counts["client_id_refused"] == 1);
        CHECK(ev.audited("authz_denied|client_id"));
        thief.onClosed();
        CHECK(ev.released.empty());  // the refused one held nothing
        // The owner leaves: its persistent session keeps the id (v5: 600 s, v3: the TTL).
        owner.onClosed();
        REQUIRE(ev.released.size() == 1);
        CHECK(ev.released[0] ==
              (v == ProtocolVersion::V5 ? "shared|sensor-1|600" : "shared|sensor-1|4294967295"));
        ConnectionPipeline again(makeOptions(), ev, 0);
        CHECK(
            connackCode(sendConnect(again, persistentConnect(v, "shared"), withCert("sensor-2"))) ==
            (v == ProtocolVersion::V5 ? 0x85 : 0x02));
        ConnectionPipeline back(makeOptions(), ev, 0);
        CHECK(sendConnect(back, persistentConnect(v, "shared"), withCert("sensor-1")).kind ==
              K::OpenBackend);
    }
}

TEST_CASE("pipeline: a connection the broker never accepted gives its claim back") {
    OwnershipTable table(std::chrono::hours(1));
    OwnerEvents ev(table);
    ConnectionPipeline p(makeOptions(), ev, 0);
    REQUIRE(
        sendConnect(p, persistentConnect(ProtocolVersion::V5, "cid"), withCert("sensor-1")).kind ==
        K::OpenBackend);
    CHECK(p.onBackendFailed("refused", true).kind == K::Close);
    p.onClosed();
    CHECK(ev.released == std::vector<std::string>{"cid|sensor-1|-"});
    ConnectionPipeline other(makeOptions(), ev, 0);
    CHECK(sendConnect(other, persistentConnect(ProtocolVersion::V5, "cid"), withCert("sensor-2"))
              .kind == K::OpenBackend);
}

TEST_CASE("pipeline: protect_client_ids false claims nothing") {
    OwnershipTable table(std::chrono::hours(1));
    OwnerEvents ev(table);
    auto opt = makeOptions();
    auto auth = std::make_shared<config::AuthConfig>();
    auth->protectClientIds = false;
    opt->auth = auth;
    ConnectionPipeline a(opt, ev, 0);
    REQUIRE(
        sendConnect(a, persistentConnect(ProtocolVersion::V5, "x"), withCert("sensor-1")).kind ==
        K::OpenBackend);
    ConnectionPipeline b(opt, ev, 0);
    CHECK(sendConnect(b, persistentConnect(ProtocolVersion::V5, "x"), withCert("sensor-2")).kind ==
          K::OpenBackend);
    CHECK(table.size() == 0);
}

TEST_CASE("pipeline: a will beyond max_qos / the retain rights is refused at CONNECT") {
    policy::PolicySpec spec;
    policy::RoleSpec role;
    role.name = "dev";
    role.publish = {"devices/%u/#"};
    role.hasRetain = true;
    role.retain = {"devices/%u/status"};
    role.maxQos = 1;
    spec.roles.push_back(role);
    spec.defaultRoles = {"dev"};
    std::vector<std::string> errors;
    auto opt = makeOptions();
    opt->policy = policy::Policy::compile(spec, errors);
    REQUIRE(opt->policy);
    struct Case {
        ProtocolVersion v;
        uint8_t qos;
        bool retain;
        const char* topic;
        uint8_t code;
    };
    for (const Case& c : {Case{ProtocolVersion::V5, 2, false, "devices/sensor-1/status", 0x9B},
                          Case{ProtocolVersion::V5, 0, true, "devices/sensor-1/t", 0x9A},
                          Case{ProtocolVersion::V311, 2, false, "devices/sensor-1/t", 0x05},
                          Case{ProtocolVersion::V311, 1, true, "devices/sensor-1/t", 0x05},
                          Case{ProtocolVersion::V5, 1, true, "devices/sensor-1/status", 0}}) {
        RecordingEvents ev;
        ConnectionPipeline p(opt, ev, 0);
        auto connect = connectPacket(c.v, "w");
        connect.willFlag = true;
        connect.willTopic = c.topic;
        connect.willQos = c.qos;
        connect.willRetain = c.retain;
        Action a = sendConnect(p, connect, withCert("sensor-1"));
        if (c.code == 0) {
            CHECK(a.kind == K::OpenBackend);
        } else {
            CHECK(connackCode(a) == c.code);
            CHECK(ev.counts["authz:will"] == 1);
        }
    }
}
