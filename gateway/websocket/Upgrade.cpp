#include "gateway/websocket/Upgrade.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace moat::websocket {
namespace {

constexpr size_t kMaxHeaders = 64;
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
               return lower(x) == lower(y);
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 7230 tchar.
bool isTchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// Calls f(token) for each element of a comma-separated header list; empty elements skipped.
template <typename F>
void forEachToken(std::string_view list, F f) {
    size_t i = 0;
    while (i <= list.size()) {
        size_t end = list.find(',', i);
        if (end == std::string_view::npos) end = list.size();
        std::string_view t = trim(list.substr(i, end - i));
        if (!t.empty()) f(t);
        i = end + 1;
    }
}

bool hasToken(std::string_view list, std::string_view token) {
    bool found = false;
    forEachToken(list, [&](std::string_view t) { found = found || iequals(t, token); });
    return found;
}

int base64Value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// RFC 6455 §4.1: the key is the base64 of 16 bytes: 22 characters, "==", and the last
// character's unused low bits zero (the canonical encoding).
bool validKey(std::string_view k) {
    if (k.size() != 24 || k[22] != '=' || k[23] != '=') return false;
    for (size_t i = 0; i < 22; ++i)
        if (base64Value(k[i]) < 0) return false;
    return (base64Value(k[21]) & 0x0f) == 0;
}

const char* statusText(int status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 426:
            return "Upgrade Required";
        case 429:
            return "Too Many Requests";
        default:
            return "Error";
    }
}

}  // namespace

UpgradeResult refusal(int status, const char* reason) {
    UpgradeResult r;
    r.status = UpgradeStatus::Refused;
    r.httpStatus = status;
    r.reason = reason;
    const std::string body = std::string(statusText(status)) + " (" + reason + ")\n";
    r.response = "HTTP/1.1 " + std::to_string(status) + " " + statusText(status) +
                 "\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n";
    if (status == 426) r.response += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    r.response += "\r\n" + body;
    return r;
}

namespace {

struct Head {
    std::string_view target;
    std::optional<std::string_view> host, key, version, origin;
    std::string upgrade, connection, protocols, forwardedFor;
};

// Appends a list-valued header to `to` ("a, b" as if sent on one line, RFC 7230 §3.2.2).
void appendList(std::string& to, std::string_view value) {
    if (!to.empty()) to += ',';
    to.append(value);
}

// Parses the head [0, len) (final CRLF CRLF excluded). Null: well-formed; else the refusal.
const char* parseHead(std::string_view text, Head& h) {
    size_t lineEnd = text.find("\r\n");
    std::string_view requestLine = text.substr(0, lineEnd);
    // "GET SP origin-form SP HTTP/1.1", single spaces.
    const size_t sp1 = requestLine.find(' ');
    const size_t sp2 = requestLine.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
        requestLine.find(' ', sp2 + 1) != std::string_view::npos)
        return "request_line";
    if (requestLine.substr(0, sp1) != "GET") return "method";
    if (requestLine.substr(sp2 + 1) != "HTTP/1.1") return "http_version";
    h.target = requestLine.substr(sp1 + 1, sp2 - sp1 - 1);
    if (h.target.empty() || h.target.front() != '/') return "request_target";
    for (char c : h.target)
        if (c <= 0x20 || c >= 0x7f) return "request_target";

    size_t count = 0;
    size_t pos = lineEnd == std::string_view::npos ? text.size() : lineEnd + 2;
    while (pos < text.size()) {
        size_t end = text.find("\r\n", pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 2;
        if (++count > kMaxHeaders) return "too_many_headers";
        const size_t colon = line.find(':');
        // No obsolete line folding, no space before the colon, a token name.
        if (colon == std::string_view::npos || colon == 0) return "header_syntax";
        std::string_view name = line.substr(0, colon);
        if (!std::all_of(name.begin(), name.end(), isTchar)) return "header_syntax";
        std::string_view value = trim(line.substr(colon + 1));
        auto single = [&](std::optional<std::string_view>& slot) {
            if (slot) return false;
            slot = value;
            return true;
        };
        if (iequals(name, "Host")) {
            if (!single(h.host)) return "duplicate_header";
        } else if (iequals(name, "Sec-WebSocket-Key")) {
            if (!single(h.key)) return "duplicate_header";
        } else if (iequals(name, "Sec-WebSocket-Version")) {
            if (!single(h.version)) return "duplicate_header";
        } else if (iequals(name, "Origin")) {
            if (!single(h.origin)) return "duplicate_header";
        } else if (iequals(name, "Upgrade")) {
            appendList(h.upgrade, value);
        } else if (iequals(name, "Connection")) {
            appendList(h.connection, value);
        } else if (iequals(name, "Sec-WebSocket-Protocol")) {
            appendList(h.protocols, value);
        } else if (iequals(name, "X-Forwarded-For")) {
            appendList(h.forwardedFor, value);
        }
        // Anything else (Sec-WebSocket-Extensions included: permessage-deflate is declined
        // by not answering it) is ignored.
    }
    return nullptr;
}

// X-Forwarded-For: the rightmost entry that is not a trusted proxy (each hop appends the
// address it saw, so only entries right of the last untrusted one were written by proxies
// we trust); all trusted: the leftmost. False: an entry is not an address.
bool forwardedClient(std::string_view list, const proxy::CidrSet* trusted, proxy::Address& out) {
    std::vector<std::string_view> entries;
    bool ok = true;
    forEachToken(list, [&](std::string_view t) { entries.push_back(t); });
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        proxy::Address a = parseIpLiteral(*it);
        if (!a.valid()) return false;
        out = a;
        if (trusted == nullptr || !trusted->contains(a)) return ok;
    }
    return ok;
}

}  // namespace

proxy::Address parseIpLiteral(std::string_view text) {
    proxy::Address a;
    std::string host(text);
    if (!host.empty() && host.front() == '[') {
        const size_t close = host.find(']');
        if (close == std::string::npos) return {};
        const std::string rest = host.substr(close + 1);
        if (!rest.empty() && (rest[0] != ':' || rest.size() < 2 ||
                              rest.find_first_not_of("0123456789", 1) != std::string::npos))
            return {};
        host = host.substr(1, close - 1);
    } else if (std::count(host.begin(), host.end(), ':') == 1) {
        const size_t colon = host.find(':');  // IPv4 with a port
        if (colon + 1 >= host.size() ||
            host.find_first_not_of("0123456789", colon + 1) != std::string::npos)
            return {};
        host.resize(colon);
    }
    if (host.size() > 45) return {};
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        a.family = AF_INET;
        std::memcpy(a.ip.data(), &v4, 4);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(v6.s6_addr, mapped, 12) == 0) {
            a.family = AF_INET;
            std::memcpy(a.ip.data(), v6.s6_addr + 12, 4);
        } else {
            a.family = AF_INET6;
            std::memcpy(a.ip.data(), v6.s6_addr, 16);
        }
    }
    return a;
}

std::string acceptKey(std::string_view key) {
    std::string in(key);
    in.append(kGuid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(in.data(), in.size(), digest, &n, EVP_sha1(), nullptr);
    unsigned char out[64];
    const int len = EVP_EncodeBlock(out, digest, static_cast<int>(n));
    return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(len));
}

UpgradeResult parseUpgrade(const uint8_t* data, size_t len, const UpgradeOptions& o) {
    const size_t limit = std::min(len, kMaxHead);
    // Not a WebSocket upgrade at all (an MQTT client on a WebSocket port, another method):
    // refused at its first bytes, not at the handshake timeout.
    static constexpr char kGet[] = "GET ";
    for (size_t i = 0; i < std::min<size_t>(limit, 4); ++i)
        if (data[i] != static_cast<uint8_t>(kGet[i])) return refusal(400, "not_http");
    size_t headEnd = 0;
    for (size_t i = 0; i < limit; ++i) {
        const uint8_t c = data[i];
        if (c == '\n') {
            if (i == 0 || data[i - 1] != '\r') return refusal(400, "line_end");
            if (i >= 3 && data[i - 2] == '\n') {
                headEnd = i + 1;
                break;
            }
        } else if (c == '\r') {
            if (i + 1 < limit && data[i + 1] != '\n') return refusal(400, "line_end");
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return refusal(400, "control_character");
        }
    }
    if (headEnd == 0) {
        if (len >= kMaxHead) return refusal(400, "head_too_large");
        return {};
    }
    Head h;
    const std::string_view text(reinterpret_cast<const char*>(data), headEnd - 4);
    if (const char* bad = parseHead(text, h)) return refusal(400, bad);
    if (!h.host) return refusal(400, "no_host");
    const std::string_view path = h.target.substr(0, h.target.find('?'));
    if (path != o.path) return refusal(404, "path");
    if (!hasToken(h.upgrade, "websocket") || !hasToken(h.connection, "upgrade"))
        return refusal(426, "not_upgrade");
    if (!h.version || *h.version != "13") return refusal(426, "version");
    if (!h.key || !validKey(*h.key)) return refusal(400, "key");
    if (h.origin && o.allowedOrigins) {
        const auto& list = *o.allowedOrigins;
        if (std::none_of(list.begin(), list.end(),
                         [&](const std::string& a) { return iequals(a, *h.origin); }))
            return refusal(403, "origin");
    }
    UpgradeResult r;
    // The client's order of preference; "mqtt" is MQTT 3.1.1 / 5, "mqttv3.1" the older name.
    forEachToken(h.protocols, [&](std::string_view t) {
        if (r.subprotocol.empty() && (t == "mqtt" || t == "mqttv3.1")) r.subprotocol = t;
    });
    if (r.subprotocol.empty()) return refusal(400, "subprotocol");
    if (o.forwardedFor && !h.forwardedFor.empty() &&
        !forwardedClient(h.forwardedFor, o.trusted, r.forwarded))
        return refusal(400, "forwarded_for");
    r.status = UpgradeStatus::Accepted;
    r.httpStatus = 101;
    r.headLength = headEnd;
    r.response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        acceptKey(*h.key) + "\r\nSec-WebSocket-Protocol: " + r.subprotocol + "\r\n\r\n";
    return r;
}

}  // namespace moat::websocket
