#include "gateway/config/Scalars.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

namespace moat::config {
namespace {

using u128 = unsigned __int128;

// A non-negative decimal "digits[.digits]" kept exact: value = mantissa / 10^fracDigits.
// Exactness matters because "1.5s" must become 1500 ms, not 1499.
struct Decimal {
    uint64_t mantissa = 0;
    int fracDigits = 0;
};

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

// Consumes a Decimal from the front of `s`.
std::optional<Decimal> takeDecimal(std::string_view& s) {
    Decimal d;
    size_t i = 0;
    bool any = false;
    for (; i < s.size() && isDigit(s[i]); ++i) {
        if (d.mantissa > (UINT64_MAX - 9) / 10) return std::nullopt;
        d.mantissa = d.mantissa * 10 + static_cast<uint64_t>(s[i] - '0');
        any = true;
    }
    if (!any) return std::nullopt;
    if (i < s.size() && s[i] == '.') {
        ++i;
        bool anyFrac = false;
        for (; i < s.size() && isDigit(s[i]); ++i) {
            if (d.mantissa > (UINT64_MAX - 9) / 10 || d.fracDigits >= 18) return std::nullopt;
            d.mantissa = d.mantissa * 10 + static_cast<uint64_t>(s[i] - '0');
            ++d.fracDigits;
            anyFrac = true;
        }
        if (!anyFrac) return std::nullopt;
    }
    s.remove_prefix(i);
    return d;
}

// d * unit, only when the result is a whole number that fits in 64 bits.
std::optional<uint64_t> scaleExact(Decimal d, uint64_t unit) {
    u128 v = static_cast<u128>(d.mantissa) * unit;
    u128 div = 1;
    for (int i = 0; i < d.fracDigits; ++i) div *= 10;
    if (v % div != 0) return std::nullopt;
    v /= div;
    if (v > UINT64_MAX) return std::nullopt;
    return static_cast<uint64_t>(v);
}

std::optional<uint64_t> durationUnit(std::string_view& s) {
    if (s.starts_with("ms")) {
        s.remove_prefix(2);
        return 1;
    }
    if (s.empty()) return std::nullopt;
    uint64_t unit = 0;
    switch (s.front()) {
        case 's':
            unit = 1000;
            break;
        case 'm':
            unit = 60 * 1000;
            break;
        case 'h':
            unit = 3600 * 1000;
            break;
        case 'd':
            unit = 24 * 3600 * 1000;
            break;
        default:
            return std::nullopt;
    }
    s.remove_prefix(1);
    return unit;
}

std::optional<uint64_t> sizeUnit(std::string_view u) {
    struct Unit {
        std::string_view name;
        uint64_t bytes;
    };
    static constexpr std::array<Unit, 11> kUnits{{
        {"", 1},
        {"B", 1},
        {"KB", 1000},
        {"kB", 1000},
        {"MB", 1000 * 1000},
        {"GB", 1000 * 1000 * 1000},
        {"TB", 1000ULL * 1000 * 1000 * 1000},
        {"KiB", 1024},
        {"MiB", 1024 * 1024},
        {"GiB", 1024 * 1024 * 1024},
        {"TiB", 1024ULL * 1024 * 1024 * 1024},
    }};
    for (const auto& unit : kUnits) {
        if (unit.name == u) return unit.bytes;
    }
    return std::nullopt;
}

// Size with its unit reported, so rates can tell bytes from counts.
std::optional<uint64_t> parseSizeImpl(std::string_view s, bool* hadUnit) {
    auto d = takeDecimal(s);
    if (!d) return std::nullopt;
    auto unit = sizeUnit(s);
    if (!unit) return std::nullopt;
    if (hadUnit) *hadUnit = !s.empty();
    return scaleExact(*d, *unit);
}

bool parseAddress(std::string_view s, int family, void* out) {
    if (s.empty() || s.size() > 64) return false;
    std::string copy(s);  // inet_pton needs a terminated string
    return inet_pton(family, copy.c_str(), out) == 1;
}

}  // namespace

std::string HostPort::toString() const {
    std::string out;
    out.reserve(host.size() + 8);
    if (host.find(':') != std::string::npos) {
        out += '[';
        out += host;
        out += ']';
    } else {
        out += host;
    }
    out += ':';
    out += std::to_string(port);
    return out;
}

std::optional<Millis> parseDuration(const std::string& str) {
    std::string_view s = str;
    if (s == "0") return Millis{0};
    if (s.empty()) return std::nullopt;
    u128 total = 0;
    // Compound values ("1h30m") are accepted, as Go's time.ParseDuration does.
    while (!s.empty()) {
        auto d = takeDecimal(s);
        if (!d) return std::nullopt;
        auto unit = durationUnit(s);
        if (!unit) return std::nullopt;
        auto ms = scaleExact(*d, *unit);
        if (!ms) return std::nullopt;
        total += *ms;
        if (total > static_cast<u128>(kMaxDuration.count())) return std::nullopt;
    }
    return Millis{static_cast<int64_t>(total)};
}

std::optional<uint64_t> parseSize(const std::string& s) {
    return parseSizeImpl(s, nullptr);
}

std::optional<RateSpec> parseRateSpec(std::string_view s) {
    if (s == "0" || s == "unlimited") return RateSpec{};
    size_t slash = s.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    bool bytes = false;
    auto amount = parseSizeImpl(s.substr(0, slash), &bytes);
    // "0/s" is refused rather than read as unlimited: a zero rate written as a rate is
    // more likely a mistake than a wish to lift the limit.
    if (!amount || *amount == 0) return std::nullopt;
    std::string_view periodText = s.substr(slash + 1);
    if (periodText.empty()) return std::nullopt;
    // "/s" means "/1s". Built by appending: GCC 12 flags string::insert at 0 here with a
    // false -Wrestrict.
    std::string period;
    if (!isDigit(periodText.front())) period += '1';
    period += periodText;
    auto ms = parseDuration(period);
    if (!ms || ms->count() <= 0) return std::nullopt;
    RateSpec spec;
    spec.rate.perSecond = static_cast<double>(*amount) * 1000.0 / static_cast<double>(ms->count());
    spec.bytes = bytes;
    return spec;
}

std::optional<Rate> parseRate(const std::string& s) {
    auto spec = parseRateSpec(s);
    if (!spec) return std::nullopt;
    return spec->rate;
}

bool isIpv4Literal(std::string_view s) {
    in_addr a;
    return parseAddress(s, AF_INET, &a);
}

bool isIpv6Literal(std::string_view s) {
    in6_addr a;
    return parseAddress(s, AF_INET6, &a);
}

bool isHostName(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    std::string_view lastLabel;
    size_t start = 0;
    while (start <= s.size()) {
        size_t dot = s.find('.', start);
        if (dot == std::string_view::npos) dot = s.size();
        std::string_view label = s.substr(start, dot - start);
        if (label.empty() || label.size() > 63) return false;
        if (label.front() == '-' || label.back() == '-') return false;
        for (char c : label) {
            bool ok = isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                      c == '_';
            if (!ok) return false;
        }
        lastLabel = label;
        start = dot + 1;
    }
    // An all-numeric last label is a malformed address ("10.0.0.256"), not a name.
    for (char c : lastLabel) {
        if (!isDigit(c)) return true;
    }
    return false;
}

std::optional<HostPort> parseHostPort(const std::string& str) {
    std::string_view s = str;
    std::string_view host;
    std::string_view port;
    if (s.starts_with('[')) {
        size_t close = s.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = s.substr(1, close - 1);
        if (!isIpv6Literal(host)) return std::nullopt;
        std::string_view rest = s.substr(close + 1);
        if (!rest.starts_with(':')) return std::nullopt;
        port = rest.substr(1);
    } else {
        size_t colon = s.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        // A bare IPv6 address is ambiguous ("::1:8883"); it must be bracketed.
        if (host.find(':') != std::string_view::npos) return std::nullopt;
        if (!isIpv4Literal(host) && !isHostName(host)) return std::nullopt;
    }
    if (port.empty() || port.size() > 5) return std::nullopt;
    auto p = parseUint(port, 65535);
    if (!p) return std::nullopt;
    HostPort hp{std::string(host), static_cast<uint16_t>(*p)};
    if (s.starts_with('[')) {
        // Canonical form, so "[0::0]" and "[::]" compare equal in the bind clash checks.
        in6_addr a;
        char text[INET6_ADDRSTRLEN] = {};
        if (parseAddress(host, AF_INET6, &a) && inet_ntop(AF_INET6, &a, text, sizeof text)) {
            hp.host = text;
        }
    }
    return hp;
}

std::optional<bool> parseBool(std::string_view s) {
    static constexpr std::array<std::string_view, 9> kTrue{"true", "True", "TRUE", "yes", "Yes",
                                                           "YES",  "on",   "On",   "ON"};
    static constexpr std::array<std::string_view, 9> kFalse{"false", "False", "FALSE", "no", "No",
                                                            "NO",    "off",   "Off",   "OFF"};
    for (auto t : kTrue) {
        if (s == t) return true;
    }
    for (auto f : kFalse) {
        if (s == f) return false;
    }
    return std::nullopt;
}

std::optional<uint64_t> parseUint(std::string_view s, uint64_t max) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (!isDigit(c)) return std::nullopt;
        uint64_t digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
    }
    if (v > max) return std::nullopt;
    return v;
}

std::optional<double> parseDouble(std::string_view s) {
    if (s.empty()) return std::nullopt;
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
}

CidrResult parseCidr(std::string_view s) {
    CidrResult r;
    size_t slash = s.find('/');
    std::string_view addrText = s.substr(0, slash);
    std::array<unsigned char, 16> bytes{};
    int family = 0;
    size_t bits = 0;
    if (parseAddress(addrText, AF_INET, bytes.data())) {
        family = AF_INET;
        bits = 32;
    } else if (parseAddress(addrText, AF_INET6, bytes.data())) {
        family = AF_INET6;
        bits = 128;
    } else {
        // Built with push_back/append: GCC 12 flags both `"'" + std::string(...)` and
        // assigning a one-character literal here with false -Warray-bounds / -Wrestrict.
        std::string msg;
        msg.reserve(addrText.size() + 40);
        msg.push_back('\'');
        msg.append(addrText);
        msg.append("' is not an IPv4 or IPv6 address");
        r.error = std::move(msg);
        return r;
    }
    size_t prefix = bits;
    if (slash != std::string_view::npos) {
        auto p = parseUint(s.substr(slash + 1), bits);
        if (!p) {
            r.error = "bad prefix length (expected /0../" + std::to_string(bits) + ")";
            return r;
        }
        prefix = static_cast<size_t>(*p);
    }
    auto masked = bytes;
    for (size_t bit = prefix; bit < bits; ++bit) {
        masked[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
    }
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, masked.data(), text, sizeof text);
    std::string canonical = std::string(text) + "/" + std::to_string(prefix);
    if (masked != bytes) {
        // Refused rather than silently masked: "10.1.2.3/8" is usually a typo for /32.
        r.error = "host bits are set (did you mean " + canonical + "?)";
        return r;
    }
    r.normalized = std::move(canonical);
    return r;
}

}  // namespace moat::config
