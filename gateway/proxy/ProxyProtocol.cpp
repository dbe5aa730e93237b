#include "gateway/proxy/ProxyProtocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace moat::proxy {

namespace {

constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";

constexpr uint8_t kCmdLocal = 0x0;
constexpr uint8_t kCmdProxy = 0x1;
constexpr uint8_t kFamUnspec = 0x00;
constexpr uint8_t kFamTcp4 = 0x11;
constexpr uint8_t kFamTcp6 = 0x21;
constexpr uint8_t kFamUnixStream = 0x31;
constexpr size_t kInetBlock = 12, kInet6Block = 36, kUnixBlock = 216;

ParseResult fail(ParseError e) {
    ParseResult r;
    r.status = ParseStatus::Error;
    r.error = e;
    return r;
}

// Compares the bytes we have against a signature; -1 mismatch, 0 prefix so far, 1 complete.
int matchPrefix(const uint8_t* data, size_t len, const uint8_t* sig, size_t sigLen) {
    size_t n = std::min(len, sigLen);
    if (std::memcmp(data, sig, n) != 0) return -1;
    return n == sigLen ? 1 : 0;
}

// IPv4-mapped IPv6 is the same host as its IPv4 address: keep one spelling.
void normalize(Address& a) {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a.family == AF_INET6 && std::memcmp(a.ip.data(), kMapped, 12) == 0) {
        std::array<uint8_t, 16> v4{};
        std::memcpy(v4.data(), a.ip.data() + 12, 4);
        a.ip = v4;
        a.family = AF_INET;
    }
}

uint16_t readBe16(const uint8_t* p) {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

// "0".."65535", decimal, no sign, no leading zero (spec §2.1).
bool parsePort(std::string_view s, uint16_t& out) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    uint32_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    if (v > 65535) return false;
    out = static_cast<uint16_t>(v);
    return true;
}

bool parseIp(std::string_view s, int family, Address& out) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (s.empty() || s.size() >= sizeof buf) return false;
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    out.ip = {};
    if (inet_pton(family, buf, out.ip.data()) != 1) return false;
    out.family = family;
    return true;
}

ParseResult parseV1(const uint8_t* data, size_t len) {
    // Find the CRLF; every byte before it must be printable ASCII. The CR sits at index
    // kV1MaxLength - 2 at the latest, so the whole line is at most kV1MaxLength bytes.
    const size_t lastCr = kV1MaxLength - 2;
    const size_t scan = std::min(len, lastCr + 1);
    size_t eol = 0;
    bool found = false;
    for (size_t i = kV1Prefix.size(); i < scan; ++i) {
        uint8_t c = data[i];
        if (c == '\r') {
            if (i + 1 >= len) return ParseResult{};  // need the byte after CR
            if (data[i + 1] != '\n') return fail(ParseError::V1BadLine);
            eol = i;
            found = true;
            break;
        }
        if (c < 0x20 || c > 0x7E) return fail(ParseError::V1BadLine);
    }
    if (!found) {
        if (len > lastCr) return fail(ParseError::V1LineTooLong);
        return ParseResult{};
    }

    std::string_view line(reinterpret_cast<const char*>(data) + kV1Prefix.size(),
                          eol - kV1Prefix.size());
    std::string_view fields[5];
    size_t count = 0;
    size_t start = 0;
    while (true) {
        size_t sp = line.find(' ', start);
        std::string_view f = line.substr(start, sp == std::string_view::npos ? sp : sp - start);
        if (count == 0 && f == "UNKNOWN") {
            // The sender could not tell (or does not say): what follows is to be ignored.
            ParseResult r;
            r.status = ParseStatus::Done;
            r.length = eol + 2;
            r.header.version = 1;
            r.header.local = true;
            return r;
        }
        if (f.empty() || count == 5) return fail(ParseError::V1BadLine);
        fields[count++] = f;
        if (sp == std::string_view::npos) break;
        start = sp + 1;
    }
    if (count != 5) return fail(ParseError::V1BadLine);
    int family;
    if (fields[0] == "TCP4")
        family = AF_INET;
    else if (fields[0] == "TCP6")
        family = AF_INET6;
    else
        return fail(ParseError::V1BadLine);

    ParseResult r;
    r.header.version = 1;
    if (!parseIp(fields[1], family, r.header.source) ||
        !parseIp(fields[2], family, r.header.destination))
        return fail(ParseError::V1BadAddress);
    if (!parsePort(fields[3], r.header.source.port) ||
        !parsePort(fields[4], r.header.destination.port))
        return fail(ParseError::V1BadPort);
    normalize(r.header.source);
    normalize(r.header.destination);
    r.status = ParseStatus::Done;
    r.length = eol + 2;
    return r;
}

ParseResult parseV2(const uint8_t* data, size_t len) {
    // The fixed part is judged byte by byte as it arrives, so garbage fails at once.
    if (len > 12 && (data[12] >> 4) != 0x2) return fail(ParseError::V2BadVersion);
    const uint8_t command = len > 12 ? (data[12] & 0x0F) : 0;
    if (len > 12 && command != kCmdLocal && command != kCmdProxy)
        return fail(ParseError::V2BadCommand);
    const uint8_t fam = len > 13 ? data[13] : 0;
    if (len > 13 && command == kCmdProxy && fam != kFamUnspec && fam != kFamTcp4 &&
        fam != kFamTcp6 && fam != kFamUnixStream)
        return fail(ParseError::V2BadFamily);
    if (len < kV2HeaderFixed) return ParseResult{};

    const size_t payload = readBe16(data + 14);
    if (payload > kMaxV2Payload) return fail(ParseError::V2BadLength);
    size_t block = 0;
    if (command == kCmdProxy) {
        block = fam == kFamTcp4         ? kInetBlock
                : fam == kFamTcp6       ? kInet6Block
                : fam == kFamUnixStream ? kUnixBlock
                                        : 0;
        if (payload < block) return fail(ParseError::V2BadLength);
    }
    if (len < kV2HeaderFixed + payload) return ParseResult{};

    ParseResult r;
    r.status = ParseStatus::Done;
    r.length = kV2HeaderFixed + payload;
    r.header.version = 2;
    const uint8_t* p = data + kV2HeaderFixed;
    if (command == kCmdLocal) {
        // Health checks and the balancer's own traffic: addresses and TLVs are ignored.
        r.header.local = true;
        return r;
    }

    // TLVs (type, 16-bit length, value) are skipped, but only when they tile the rest of
    // the header exactly: a length that runs past the end is a broken or hostile sender.
    for (size_t off = block; off < payload;) {
        if (payload - off < 3) return fail(ParseError::V2BadTlv);
        size_t tlvLen = readBe16(p + off + 1);
        if (payload - off - 3 < tlvLen) return fail(ParseError::V2BadTlv);
        off += 3 + tlvLen;
    }

    Address& src = r.header.source;
    Address& dst = r.header.destination;
    if (fam == kFamTcp4) {
        src.family = dst.family = AF_INET;
        std::memcpy(src.ip.data(), p, 4);
        std::memcpy(dst.ip.data(), p + 4, 4);
        src.port = readBe16(p + 8);
        dst.port = readBe16(p + 10);
    } else if (fam == kFamTcp6) {
        src.family = dst.family = AF_INET6;
        std::memcpy(src.ip.data(), p, 16);
        std::memcpy(dst.ip.data(), p + 16, 16);
        src.port = readBe16(p + 32);
        dst.port = readBe16(p + 34);
        normalize(src);
        normalize(dst);
    } else {
        // UNSPEC, or a UNIX socket on the balancer's host: no IP to account the device
        // under, so the connection is taken as the balancer's own (spec §2.2).
        r.header.local = true;
    }
    return r;
}

}  // namespace

std::string Address::ipText() const {
    if (family != AF_INET && family != AF_INET6) return {};
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, ip.data(), buf, sizeof buf);
    return buf;
}

std::string Address::text() const {
    if (!valid()) return {};
    // Appended, not `"[" + ipText()`: GCC 12 reports that operator+ (an insert at 0) with a
    // false -Wrestrict (GCC PR 105651).
    std::string out;
    if (family == AF_INET6) out.push_back('[');
    out.append(ipText());
    if (family == AF_INET6) out.push_back(']');
    out.push_back(':');
    out.append(std::to_string(port));
    return out;
}

Address addressFromSockaddr(const sockaddr* sa) {
    Address a;
    if (!sa) return a;
    if (sa->sa_family == AF_INET) {
        sockaddr_in in;
        std::memcpy(&in, sa, sizeof in);
        a.family = AF_INET;
        std::memcpy(a.ip.data(), &in.sin_addr, 4);
        a.port = ntohs(in.sin_port);
    } else if (sa->sa_family == AF_INET6) {
        sockaddr_in6 in6;
        std::memcpy(&in6, sa, sizeof in6);
        a.family = AF_INET6;
        std::memcpy(a.ip.data(), &in6.sin6_addr, 16);
        a.port = ntohs(in6.sin6_port);
        normalize(a);
    }
    return a;
}

const char* parseErrorName(ParseError e) {
    switch (e) {
        case ParseError::None:
            return "none";
        case ParseError::NotProxyHeader:
            return "not a PROXY protocol header";
        case ParseError::VersionNotAllowed:
            return "PROXY protocol version not enabled";
        case ParseError::V1LineTooLong:
            return "v1 line too long";
        case ParseError::V1BadLine:
            return "v1 malformed line";
        case ParseError::V1BadAddress:
            return "v1 bad address";
        case ParseError::V1BadPort:
            return "v1 bad port";
        case ParseError::V2BadVersion:
            return "v2 bad version";
        case ParseError::V2BadCommand:
            return "v2 bad command";
        case ParseError::V2BadFamily:
            return "v2 unsupported address family";
        case ParseError::V2BadLength:
            return "v2 bad length";
        case ParseError::V2BadTlv:
            return "v2 malformed TLV";
    }
    return "unknown";
}

ParseResult parseProxyHeader(const uint8_t* data, size_t len, Versions accept) {
    if (len == 0) return ParseResult{};
    const bool v1 = static_cast<uint8_t>(accept) & static_cast<uint8_t>(Versions::V1);
    const bool v2 = static_cast<uint8_t>(accept) & static_cast<uint8_t>(Versions::V2);
    const auto* v1Sig = reinterpret_cast<const uint8_t*>(kV1Prefix.data());
    int m1 = matchPrefix(data, len, v1Sig, kV1Prefix.size());
    int m2 = matchPrefix(data, len, kV2Signature, sizeof kV2Signature);
    if (m1 == 1) return v1 ? parseV1(data, len) : fail(ParseError::VersionNotAllowed);
    if (m2 == 1) return v2 ? parseV2(data, len) : fail(ParseError::VersionNotAllowed);
    if ((m1 == 0 && v1) || (m2 == 0 && v2)) return ParseResult{};
    if (m1 == 0 || m2 == 0) return ParseResult{};  // wait: may yet be the other version
    return fail(ParseError::NotProxyHeader);
}

size_t encodeProxyV2(const Address& source, const Address& destination, uint8_t* out) {
    std::memcpy(out, kV2Signature, sizeof kV2Signature);
    if (!source.valid()) {
        out[12] = 0x20 | kCmdLocal;
        out[13] = kFamUnspec;
        out[14] = out[15] = 0;
        return kV2HeaderFixed;
    }
    out[12] = 0x20 | kCmdProxy;
    uint8_t* p = out + kV2HeaderFixed;
    auto putPort = [](uint8_t* q, uint16_t port) {
        q[0] = static_cast<uint8_t>(port >> 8);
        q[1] = static_cast<uint8_t>(port & 0xFF);
    };
    const bool bothV4 =
        source.family == AF_INET && (destination.family == AF_INET || !destination.valid());
    if (bothV4) {
        out[13] = kFamTcp4;
        out[14] = 0;
        out[15] = kInetBlock;
        std::memcpy(p, source.ip.data(), 4);
        std::memset(p + 4, 0, 4);
        if (destination.valid()) std::memcpy(p + 4, destination.ip.data(), 4);
        putPort(p + 8, source.port);
        putPort(p + 10, destination.port);
        return kV2HeaderFixed + kInetBlock;
    }
    auto put16 = [](uint8_t* q, const Address& a) {
        std::memset(q, 0, 16);
        if (a.family == AF_INET6) {
            std::memcpy(q, a.ip.data(), 16);
        } else if (a.family == AF_INET) {
            q[10] = q[11] = 0xff;  // IPv4-mapped
            std::memcpy(q + 12, a.ip.data(), 4);
        }
    };
    out[13] = kFamTcp6;
    out[14] = 0;
    out[15] = kInet6Block;
    put16(p, source);
    put16(p + 16, destination);
    putPort(p + 32, source.port);
    putPort(p + 34, destination.port);
    return kV2HeaderFixed + kInet6Block;
}

}  // namespace moat::proxy
