#pragma once
// The text forms of a connection's peer address, as logs, audit lines and per-IP limits use
// them.

#include <sys/socket.h>

#include <string>

namespace moat::net {

// "ip:port" ("[v6]:port"); the bare IP into *ipOut when given. IPv4-mapped IPv6 addresses
// are reported as plain IPv4 so per-IP limits agree across address families.
std::string formatPeerAddress(const sockaddr_storage& ss, std::string* ipOut);

}  // namespace moat::net
