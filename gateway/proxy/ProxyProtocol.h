#pragma once
// PROXY protocol v1 (text) and v2 (binary), as HAProxy specifies it
// (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt): a load balancer that
// forwards a TCP connection first sends one header naming the original client address.
//
// parseProxyHeader() is a pure function over the bytes received so far (HAProxy mqtt.c
// style): NeedMore, Error(reason) or Done(header, length). The caller keeps the bytes until
// Done; everything after `length` belongs to the next layer (TLS) and must not be lost.
// It fails as early as it can: the first byte that cannot start an accepted header is an
// error, so a device that speaks TLS to a PROXY listener is refused at once.
//
// encodeProxyV2() writes the header Moat sends to a broker (backend.proxy_protocol: v2).
//
// Standard library and the POSIX address helpers only: no sockets, no event loop.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

struct sockaddr;

namespace moat::proxy {

// An IP endpoint. family 0 = none (v2 LOCAL, v1 UNKNOWN, unsupported v2 families). IPv4
// addresses are always kept as AF_INET, IPv4-mapped IPv6 (::ffff:a.b.c.d) included, so that
// per-IP limits and CIDR checks agree whichever way the address arrived.
struct Address {
    int family = 0;                // 0, AF_INET or AF_INET6
    std::array<uint8_t, 16> ip{};  // network order; the first 4 bytes for AF_INET
    uint16_t port = 0;

    bool valid() const { return family != 0; }
    std::string ipText() const;  // "10.0.0.1" / "2001:db8::1" ("" when !valid())
    std::string text() const;    // "10.0.0.1:1234" / "[2001:db8::1]:1234"
    bool operator==(const Address&) const = default;
};

// From a sockaddr_in / sockaddr_in6 (IPv4-mapped IPv6 becomes AF_INET); family 0 otherwise.
Address addressFromSockaddr(const sockaddr* sa);

enum class Versions : uint8_t { V1 = 1, V2 = 2, Any = 3 };

enum class ParseStatus : uint8_t { NeedMore, Done, Error };

enum class ParseError : uint8_t {
    None,
    NotProxyHeader,     // the bytes cannot start an accepted header (no signature)
    VersionNotAllowed,  // a valid signature of a version the listener does not accept
    V1LineTooLong,      // no CRLF within 107 bytes
    V1BadLine,          // wrong protocol word, separators, characters, or field count
    V1BadAddress,
    V1BadPort,
    V2BadVersion,  // version nibble is not 2
    V2BadCommand,  // command nibble is neither LOCAL nor PROXY
    V2BadFamily,   // unknown address family or transport, or a datagram transport
    V2BadLength,   // length shorter than the address block, or above kMaxV2Payload
    V2BadTlv,      // a TLV runs past the end of the header
};
const char* parseErrorName(ParseError e);

struct ProxyHeader {
    uint8_t version = 0;  // 1 or 2
    // The balancer speaks for itself (v2 LOCAL: health checks; v1 UNKNOWN; v2 UNSPEC or
    // AF_UNIX): the connection's own socket addresses apply, source/destination are empty.
    bool local = false;
    Address source;
    Address destination;
};

struct ParseResult {
    ParseStatus status = ParseStatus::NeedMore;
    ParseError error = ParseError::None;
    size_t length = 0;  // Done: bytes the header occupies
    ProxyHeader header;
};

// Limits. v1 lines are at most 107 bytes including CRLF (spec §2.1). v2 allows 64 KiB of
// TLVs; balancers send a few dozen bytes (AWS VPC endpoint id, Azure link id), so anything
// beyond kMaxV2Payload is refused rather than buffered before the device is even admitted.
inline constexpr size_t kV1MaxLength = 107;
inline constexpr size_t kV2HeaderFixed = 16;
inline constexpr size_t kMaxV2Payload = 4096;
inline constexpr size_t kMaxHeaderLength = kV2HeaderFixed + kMaxV2Payload;

ParseResult parseProxyHeader(const uint8_t* data, size_t len, Versions accept);

// v2 header: PROXY/STREAM with source and destination; families that differ are both sent
// as IPv6 (IPv4-mapped); LOCAL when the source is not valid(). Writes at most
// kV2MaxEncoded bytes to `out` and returns how many.
inline constexpr size_t kV2MaxEncoded = kV2HeaderFixed + 36;
size_t encodeProxyV2(const Address& source, const Address& destination, uint8_t* out);

}  // namespace moat::proxy
