#pragma once
// Scalar formats of the configuration file, beyond the parsers Config.h exposes.
// Pure functions over strings: no YAML, no I/O (except the resolver-free address checks).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/config/Config.h"

namespace moat::config {

// A parsed rate plus whether its amount carried a size unit ("1MiB/s" is a byte rate,
// "100/s" a count rate), so the loader can refuse a byte rate where a count is expected.
struct RateSpec {
    Rate rate;
    bool bytes = false;
};
std::optional<RateSpec> parseRateSpec(std::string_view s);

// Upper bound for any duration in the file: large enough for every sane timeout or ban,
// small enough that `now + d` never overflows a 64-bit clock in any unit down to ns.
inline constexpr Millis kMaxDuration{10LL * 365 * 24 * 3600 * 1000};  // 10 years

// "true"/"false" and the YAML 1.1 spellings operators actually write (yes/no/on/off).
std::optional<bool> parseBool(std::string_view s);

// Plain decimal integer within [0, max]; no sign, no hex, no separators.
std::optional<uint64_t> parseUint(std::string_view s, uint64_t max);

// Finite decimal number ("10", "2.5").
std::optional<double> parseDouble(std::string_view s);

// "10.0.0.0/8", "fd00::/8", or a bare address (taken as /32 or /128).
// On success `normalized` holds "addr/prefix"; otherwise `error` says what is wrong.
struct CidrResult {
    std::string normalized;
    std::string error;
    bool ok() const { return error.empty(); }
};
CidrResult parseCidr(std::string_view s);

bool isIpv4Literal(std::string_view s);
bool isIpv6Literal(std::string_view s);
// RFC 1123 host name (underscores tolerated: container service names use them).
bool isHostName(std::string_view s);

}  // namespace moat::config
