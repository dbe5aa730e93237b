#include "gateway/proxy/CidrSet.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace moat::proxy {

std::optional<CidrSet> CidrSet::parse(const std::vector<std::string>& cidrs, std::string& error) {
    CidrSet set;
    for (const std::string& text : cidrs) {
        std::string_view s = text;
        size_t slash = s.find('/');
        std::string addr(s.substr(0, slash));
        Net n{};
        unsigned bits;
        if (inet_pton(AF_INET, addr.c_str(), n.bytes.data()) == 1) {
            n.family = AF_INET;
            bits = 32;
        } else if (inet_pton(AF_INET6, addr.c_str(), n.bytes.data()) == 1) {
            n.family = AF_INET6;
            bits = 128;
        } else {
            error = "'" + text + "' is not an IPv4 or IPv6 network";
            return std::nullopt;
        }
        n.prefix = bits;
        if (slash != std::string_view::npos) {
            std::string_view p = s.substr(slash + 1);
            unsigned v = 0;
            if (p.empty() || p.size() > 3) {
                error = "'" + text + "': bad prefix length";
                return std::nullopt;
            }
            for (char c : p) {
                if (c < '0' || c > '9') {
                    error = "'" + text + "': bad prefix length";
                    return std::nullopt;
                }
                v = v * 10 + static_cast<unsigned>(c - '0');
            }
            if (v > bits) {
                error = "'" + text + "': bad prefix length";
                return std::nullopt;
            }
            n.prefix = v;
        }
        // "::ffff:10.0.0.0/104" is an IPv4 network written the long way.
        static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (n.family == AF_INET6 && n.prefix >= 96 &&
            std::memcmp(n.bytes.data(), kMapped, 12) == 0) {
            std::memmove(n.bytes.data(), n.bytes.data() + 12, 4);
            std::memset(n.bytes.data() + 4, 0, 12);
            n.family = AF_INET;
            n.prefix -= 96;
        }
        set.nets_.push_back(n);
    }
    return set;
}

bool CidrSet::contains(const Address& a) const {
    for (const Net& n : nets_) {
        if (n.family != a.family) continue;
        unsigned full = n.prefix / 8, rest = n.prefix % 8;
        if (std::memcmp(n.bytes.data(), a.ip.data(), full) != 0) continue;
        if (rest != 0) {
            uint8_t mask = static_cast<uint8_t>(0xFF00u >> rest);
            if ((n.bytes[full] & mask) != (a.ip[full] & mask)) continue;
        }
        return true;
    }
    return false;
}

}  // namespace moat::proxy
