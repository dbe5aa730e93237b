#pragma once
// The HTTP/1.1 upgrade request of a WebSocket client (RFC 6455 §4.2), judged strictly and
// bounded: the whole head within kMaxHead bytes, CRLF line ends, no folded headers, the
// single-valued headers once. Pure: bytes in, a verdict and the response bytes out.
//
// Refusals are plain HTTP answers the caller sends before closing (no broker is involved):
//   404 another path, 426 not a WebSocket upgrade or a Sec-WebSocket-Version other than 13
//   (with `Sec-WebSocket-Version: 13`), 403 an Origin outside the allowlist, 400 a malformed
//   head, a bad Sec-WebSocket-Key, no MQTT subprotocol, a bad X-Forwarded-For.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/proxy/CidrSet.h"

namespace moat::websocket {

constexpr size_t kMaxHead = 8192;

struct UpgradeOptions {
    std::string path = "/mqtt";
    // Allowed `Origin` values (compared without case); nullopt = any. A request without Origin
    // (not a browser) is always allowed.
    std::optional<std::vector<std::string>> allowedOrigins;
    // Take the client address from X-Forwarded-For: the rightmost entry not in `trusted`
    // (the caller sets this only when the TCP peer itself is a trusted balancer).
    bool forwardedFor = false;
    const proxy::CidrSet* trusted = nullptr;
};

enum class UpgradeStatus : uint8_t { NeedMore, Accepted, Refused };

struct UpgradeResult {
    UpgradeStatus status = UpgradeStatus::NeedMore;
    size_t headLength = 0;    // bytes of the head, final CRLF included (Accepted)
    int httpStatus = 0;       // 101, 400, 403, 404, 426 (429: refusal())
    std::string response;     // the complete HTTP response
    const char* reason = "";  // refusals: a short fixed word for audit and logs
    std::string subprotocol;  // Accepted: "mqtt" or "mqttv3.1" (echoed)
    // Accepted with forwardedFor: the client address X-Forwarded-For names (invalid: none
    // given, the TCP peer stays the client).
    proxy::Address forwarded;
};

// `data` holds what the client has sent so far (the head, maybe followed by the first
// frames). NeedMore until the head is complete; never NeedMore at kMaxHead bytes or more.
UpgradeResult parseUpgrade(const uint8_t* data, size_t len, const UpgradeOptions& options);

// A refusal in HTTP (status line, `Connection: close`, a short text body naming `reason`);
// parseUpgrade's own refusals, and the caller's 429 when admission control refuses the
// address a trusted balancer named.
UpgradeResult refusal(int status, const char* reason);

// Sec-WebSocket-Accept for a key: base64(SHA-1(key ‖ RFC 6455 GUID)).
std::string acceptKey(std::string_view key);

// An IPv4 / IPv6 literal (IPv6 optionally in brackets, either optionally with a port, as
// balancers write them); invalid Address when it is none of these.
proxy::Address parseIpLiteral(std::string_view text);

}  // namespace moat::websocket
