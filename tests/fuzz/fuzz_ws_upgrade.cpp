// Fuzzes the WebSocket upgrade-request parser (gateway/websocket/Upgrade.h). The first byte
// picks the options (Origin allowlist, forwarded_for); the rest is what a client sent. Checks:
//   - NeedMore only below kMaxHead bytes; and then every prefix is NeedMore too;
//   - Accepted: 0 < headLength <= len, the head alone is accepted the same way, every strict
//     prefix of the head is NeedMore, the answer is a 101 echoing an MQTT subprotocol;
//   - Refused: a 400/403/404/426 answer, 426 with Sec-WebSocket-Version: 13, and more bytes
//     never turn a refusal into something else (no "unrefuse").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/websocket/Upgrade.h"

using namespace moat::websocket;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static const moat::proxy::CidrSet trusted = [] {
        std::string err;
        return *moat::proxy::CidrSet::parse({"10.0.0.0/8", "::1"}, err);
    }();
    UpgradeOptions o;
    if (data[0] & 1) o.allowedOrigins = std::vector<std::string>{"https://dash.example.com"};
    if (data[0] & 2) {
        o.forwardedFor = true;
        o.trusted = &trusted;
    }
    if (data[0] & 4) o.path = "/";
    const uint8_t* in = data + 1;
    const size_t len = size - 1;

    UpgradeResult r = parseUpgrade(in, len, o);
    switch (r.status) {
        case UpgradeStatus::NeedMore:
            check(len < kMaxHead);
            check(r.response.empty());
            break;
        case UpgradeStatus::Accepted: {
            check(r.headLength > 0 && r.headLength <= len && r.headLength <= kMaxHead);
            check(r.httpStatus == 101);
            check(r.subprotocol == "mqtt" || r.subprotocol == "mqttv3.1");
            check(r.response.rfind("HTTP/1.1 101 ", 0) == 0);
            UpgradeResult alone = parseUpgrade(in, r.headLength, o);
            check(alone.status == UpgradeStatus::Accepted && alone.headLength == r.headLength);
            check(alone.response == r.response);
            for (size_t k = 0; k < r.headLength; k += 1 + k / 64)
                check(parseUpgrade(in, k, o).status == UpgradeStatus::NeedMore);
            break;
        }
        case UpgradeStatus::Refused: {
            check(r.httpStatus == 400 || r.httpStatus == 403 || r.httpStatus == 404 ||
                  r.httpStatus == 426);
            check(r.reason != nullptr && r.reason[0] != '\0');
            check(r.response.rfind("HTTP/1.1 " + std::to_string(r.httpStatus), 0) == 0);
            if (r.httpStatus == 426)
                check(r.response.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
            std::vector<uint8_t> more(in, in + len);
            more.insert(more.end(), {'\r', '\n', '\r', '\n', 'x'});
            check(parseUpgrade(more.data(), more.size(), o).status == UpgradeStatus::Refused);
            break;
        }
    }
    return 0;
}
