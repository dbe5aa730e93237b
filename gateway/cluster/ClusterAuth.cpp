#include "gateway/cluster/ClusterAuth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

#include "gateway/cluster/ClusterEvent.h"
#include "policy/Hex.h"

namespace moat::cluster {

namespace {

constexpr std::string_view kDomain = "moat-cluster-v1";

std::optional<uint64_t> parseU64(std::string_view s, uint64_t max) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

bool isHex64(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

bool macMatches(std::string_view key, std::string_view message, std::string_view mac) {
    std::string want = hmacHex(key, message);
    return mac.size() == want.size() && CRYPTO_memcmp(want.data(), mac.data(), mac.size()) == 0;
}

// Domain-separated MAC input: the parts joined by NUL (no part holds a NUL: Redis key names
// and event lines are percent-encoded, numbers are decimal).
std::string macInput(std::initializer_list<std::string_view> parts) {
    std::string out(kDomain);
    for (std::string_view p : parts) {
        out.push_back('\0');
        out.append(p);
    }
    return out;
}

// Splits "a b c" into exactly N space-separated non-empty fields.
template <size_t N>
bool fields(std::string_view s, std::string_view (&out)[N]) {
    for (size_t i = 0; i < N; ++i) {
        size_t sp = i + 1 < N ? s.find(' ') : std::string_view::npos;
        if (i + 1 < N && sp == std::string_view::npos) return false;
        out[i] = s.substr(0, sp);
        if (out[i].empty() || (i + 1 == N && out[i].find(' ') != std::string_view::npos))
            return false;
        if (sp != std::string_view::npos) s.remove_prefix(sp + 1);
    }
    return true;
}

}  // namespace

const char* authenticityName(Authenticity a) {
    switch (a) {
        case Authenticity::Ok:
            return "ok";
        case Authenticity::Unsigned:
            return "unsigned";
        case Authenticity::BadSignature:
            return "bad_signature";
        case Authenticity::Stale:
            return "stale";
        case Authenticity::Malformed:
            return "malformed";
    }
    return "malformed";
}

std::string hmacHex(std::string_view key, std::string_view message) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len);
    return policy::hexEncode(md, len);
}

// ------------------------------------------------------------------------------ events

std::string sealEvent(std::string_view line, std::string_view key, uint64_t nowUnixMs) {
    if (key.empty()) return std::string(line);
    std::string out(line);
    out.append(" t=");
    out.append(std::to_string(nowUnixMs));
    const std::string mac = hmacHex(key, macInput({"event", out}));
    out.append(" s=");
    out.append(mac);
    return out;
}

OpenedEvent openEvent(std::string_view payload, std::string_view key, uint64_t nowUnixMs) {
    OpenedEvent r;
    // The envelope is the last two fields, exactly `t=<digits> s=<64 hex>`; anything else
    // (an identity may well contain "s=") is an event without one.
    const size_t s = payload.rfind(" s=");
    const size_t t = s == std::string_view::npos || s == 0 ? std::string_view::npos
                                                           : payload.rfind(" t=", s - 1);
    std::optional<uint64_t> sent;
    std::string_view mac;
    if (t != std::string_view::npos) {
        sent = parseU64(payload.substr(t + 3, s - t - 3), UINT64_MAX / 2);
        mac = payload.substr(s + 3);
    }
    if (!sent || !isHex64(mac)) {
        r.result = key.empty() ? Authenticity::Ok : Authenticity::Unsigned;
        r.line = payload;
        return r;
    }
    r.line = payload.substr(0, t);
    if (key.empty()) {
        r.result = Authenticity::Ok;  // nothing to check it against
        return r;
    }
    if (!macMatches(key, macInput({"event", payload.substr(0, s)}), mac)) {
        r.result = Authenticity::BadSignature;
        return r;
    }
    const uint64_t skew = *sent > nowUnixMs ? *sent - nowUnixMs : nowUnixMs - *sent;
    r.result = skew > kMaxEventSkewMs ? Authenticity::Stale : Authenticity::Ok;
    return r;
}

// ------------------------------------------------------------------------------ records

namespace {

// Ban and owner records share one signed shape: "<value> <end unix ms> <mac>", the MAC over
// (kind, redis key, value, end); unsigned (no key): the value alone.
std::string sealWithEnd(std::string_view key, std::string_view kind, std::string_view redisKey,
                        std::string value, uint64_t endUnixMs) {
    if (key.empty()) return value;
    std::string e = std::to_string(endUnixMs);
    return value + " " + e + " " + hmacHex(key, macInput({kind, redisKey, value, e}));
}

// The signature verdict of such a record whose three fields parsed.
Authenticity verdictWithEnd(std::string_view key, std::string_view kind, std::string_view redisKey,
                            const std::string_view (&f)[3]) {
    if (key.empty()) return Authenticity::Ok;
    return macMatches(key, macInput({kind, redisKey, f[0], f[1]}), f[2])
               ? Authenticity::Ok
               : Authenticity::BadSignature;
}

}  // namespace

std::string sealBan(std::string_view key, std::string_view redisKey, uint64_t durationMs,
                    uint64_t endUnixMs) {
    return sealWithEnd(key, "ban", redisKey, std::to_string(durationMs), endUnixMs);
}

BanRecord openBan(std::string_view value, std::string_view key, std::string_view redisKey) {
    BanRecord r;
    std::string_view f[3];
    constexpr uint64_t kMax = 1ull << 53;
    if (!fields(value, f)) {
        auto d = parseU64(value, kMax);  // the unsigned form: a duration alone
        if (!d) return r;
        r.durationMs = *d;
        r.result = key.empty() ? Authenticity::Ok : Authenticity::Unsigned;
        return r;
    }
    auto d = parseU64(f[0], kMax);
    auto e = parseU64(f[1], kMax);
    if (!d || !e || !isHex64(f[2])) return r;
    r.durationMs = *d;
    r.endUnixMs = *e;
    r.result = verdictWithEnd(key, "ban", redisKey, f);
    return r;
}

std::string sealOwner(std::string_view key, std::string_view redisKey, std::string_view identity,
                      uint64_t endUnixMs) {
    return sealWithEnd(key, "owner", redisKey, escapeField(identity), endUnixMs);
}

OwnerRecord openOwner(std::string_view value, std::string_view key, std::string_view redisKey) {
    OwnerRecord r;
    std::string_view f[3];
    constexpr uint64_t kMax = 1ull << 53;
    if (!fields(value, f)) {
        auto id = unescapeField(value, kMaxSubjectBytes);
        if (!id || id->empty()) return r;
        r.identity = std::move(*id);
        r.result = key.empty() ? Authenticity::Ok : Authenticity::Unsigned;
        return r;
    }
    auto id = unescapeField(f[0], kMaxSubjectBytes);
    auto e = parseU64(f[1], kMax);
    if (!id || id->empty() || !e || !isHex64(f[2])) return r;
    r.identity = std::move(*id);
    r.endUnixMs = *e;
    r.result = verdictWithEnd(key, "owner", redisKey, f);
    return r;
}

std::string sealConn(std::string_view key, std::string_view redisKey, std::string_view ip,
                     uint32_t count) {
    std::string c = std::to_string(count);
    if (key.empty()) return c;
    return c + " " + hmacHex(key, macInput({"conn", redisKey, ip, c}));
}

ConnRecord openConn(std::string_view value, std::string_view key, std::string_view redisKey,
                    std::string_view ip) {
    ConnRecord r;
    std::string_view f[2];
    if (!fields(value, f)) {
        auto c = parseU64(value, UINT32_MAX);
        if (!c) return r;
        r.count = static_cast<uint32_t>(*c);
        r.result = key.empty() ? Authenticity::Ok : Authenticity::Unsigned;
        return r;
    }
    auto c = parseU64(f[0], UINT32_MAX);
    if (!c || !isHex64(f[1])) return r;
    r.count = static_cast<uint32_t>(*c);
    if (key.empty()) {
        r.result = Authenticity::Ok;
        return r;
    }
    r.result = macMatches(key, macInput({"conn", redisKey, ip, f[0]}), f[1])
                   ? Authenticity::Ok
                   : Authenticity::BadSignature;
    return r;
}

bool isIpLiteral(std::string_view s) {
    if (s.empty() || s.size() >= INET6_ADDRSTRLEN || s.find('\0') != std::string_view::npos)
        return false;
    char buf[INET6_ADDRSTRLEN] = {};
    s.copy(buf, s.size());
    unsigned char out[sizeof(in6_addr)];
    return inet_pton(AF_INET, buf, out) == 1 || inet_pton(AF_INET6, buf, out) == 1;
}

}  // namespace moat::cluster
