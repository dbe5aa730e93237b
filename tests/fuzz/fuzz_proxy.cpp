// Fuzzes the PROXY protocol v1/v2 parser (gateway/proxy/ProxyProtocol.h). The first byte picks
// the accepted versions; the rest is what a balancer sent. Checks:
//   - Done: 0 < length <= len, and the header alone (without what follows) parses the same;
//   - every strict prefix of a Done header is NeedMore (the parser never decides early);
//   - an Error stays an Error when more bytes arrive (no "unparse");
//   - a v2 round trip: re-encoding the parsed addresses parses back to the same addresses;
//   - CidrSet::contains never reads out of bounds for any parsed address.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/proxy/CidrSet.h"
#include "gateway/proxy/ProxyProtocol.h"

using namespace moat::proxy;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const Versions versions = static_cast<Versions>(1 + data[0] % 3);
    const uint8_t* in = data + 1;
    const size_t len = size - 1;

    ParseResult r = parseProxyHeader(in, len, versions);
    if (r.status == ParseStatus::Error) {
        check(r.error != ParseError::None);
        std::vector<uint8_t> more(in, in + len);
        more.insert(more.end(), {'\r', '\n', 0, 0, 0, 0});
        check(parseProxyHeader(more.data(), more.size(), versions).status == ParseStatus::Error);
        return 0;
    }
    if (r.status == ParseStatus::NeedMore) {
        check(len < kMaxHeaderLength);
        return 0;
    }
    check(r.length > 0 && r.length <= len);
    ParseResult alone = parseProxyHeader(in, r.length, versions);
    check(alone.status == ParseStatus::Done && alone.length == r.length);
    check(alone.header.source == r.header.source && alone.header.local == r.header.local);
    for (size_t k = 0; k < r.length; ++k)
        check(parseProxyHeader(in, k, versions).status == ParseStatus::NeedMore);

    if (!r.header.local) {
        check(r.header.source.valid() && r.header.destination.valid());
        check(!r.header.source.text().empty());
        uint8_t buf[kV2MaxEncoded];
        size_t n = encodeProxyV2(r.header.source, r.header.destination, buf);
        ParseResult back = parseProxyHeader(buf, n, Versions::V2);
        check(back.status == ParseStatus::Done && back.length == n);
        check(back.header.source == r.header.source);
        check(back.header.destination == r.header.destination);

        static const CidrSet nets = [] {
            std::string err;
            return *CidrSet::parse({"10.0.0.0/8", "0.0.0.0/0", "fd00::/7", "::/0", "1.2.3.4"}, err);
        }();
        check(nets.contains(r.header.source));  // /0 of both families covers every address
    }
    return 0;
}
