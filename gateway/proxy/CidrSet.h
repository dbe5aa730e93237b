#pragma once
// A set of IPv4 / IPv6 networks (`trusted_proxies`), matched against a peer address.
// IPv4 peers that arrive IPv4-mapped on a dual-stack socket match IPv4 networks (Address
// normalises them), so "10.0.0.0/8" means the same on a 0.0.0.0 and a [::] listener.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/proxy/ProxyProtocol.h"

namespace moat::proxy {

class CidrSet {
  public:
    // "10.0.0.0/8", "fd00::/8", or a bare address (/32, /128). Nullopt with `error` set on
    // the first entry that does not parse (config validation has normally refused it).
    static std::optional<CidrSet> parse(const std::vector<std::string>& cidrs, std::string& error);

    bool contains(const Address& a) const;
    bool empty() const { return nets_.empty(); }

  private:
    struct Net {
        int family;
        std::array<uint8_t, 16> bytes;
        unsigned prefix;
    };
    std::vector<Net> nets_;
};

}  // namespace moat::proxy
