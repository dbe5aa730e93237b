// Fuzzes what a replica reads from the cluster channel and from Redis (gateway/cluster/
// ClusterEvent.h, ClusterAuth.h): all of it is attacker-controlled for whoever reaches Redis.
// The first byte picks keyed / unkeyed checking. Checks:
//   - decodeEvent never accepts an oversized subject/replica, and a decoded event re-encodes
//     to an event that decodes the same;
//   - openEvent's line is always a prefix of the payload; with a key, Ok only for what
//     sealEvent made (a sealed copy of the line always opens Ok at the same time);
//   - openBan / openConn never report Ok with a key for input that was not sealed with it;
//   - isIpLiteral never reads past the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/cluster/ClusterAuth.h"
#include "gateway/cluster/ClusterEvent.h"

using namespace moat::cluster;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

const std::string kKey(64, 'k');
constexpr uint64_t kNow = 1700000000000ull;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const bool keyed = data[0] & 1;
    const std::string_view key = keyed ? std::string_view(kKey) : std::string_view();
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

    if (auto e = decodeEvent(in)) {
        check(e->subject.size() <= kMaxSubjectBytes && e->replica.size() <= kMaxReplicaBytes);
        auto again = decodeEvent(encodeEvent(*e));
        check(again && again->type == e->type && again->subject == e->subject &&
              again->replica == e->replica);
    }

    OpenedEvent o = openEvent(in, key, kNow);
    if (o.result == Authenticity::Ok) check(in.substr(0, o.line.size()) == o.line);
    const std::string line(in.substr(0, in.find(" t=")));
    const std::string sealed = sealEvent(line, kKey, kNow);
    OpenedEvent s = openEvent(sealed, kKey, kNow);
    // A line that itself ends like an envelope may open to a shorter line; never to a wrong MAC.
    check(s.result == Authenticity::Ok);

    BanRecord b = openBan(in, key, "moat:ban:ip:192.0.2.1");
    if (keyed && b.result == Authenticity::Ok) {
        check(b.endUnixMs.has_value());
        check(sealBan(kKey, "moat:ban:ip:192.0.2.1", b.durationMs, *b.endUnixMs) == in);
    }
    ConnRecord c = openConn(in, key, "moat:conn:r", "192.0.2.1");
    if (keyed && c.result == Authenticity::Ok)
        check(sealConn(kKey, "moat:conn:r", "192.0.2.1", c.count) == in);

    (void)isIpLiteral(in);
    return 0;
}
