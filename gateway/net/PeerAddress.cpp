#include "gateway/net/PeerAddress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include <cstring>

namespace moat::net {

std::string formatPeerAddress(const sockaddr_storage& ss, std::string* ipOut) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        // IPv4-mapped addresses are reported as plain IPv4 so per-IP limits agree.
        if (std::strncmp(ip, "::ffff:", 7) == 0 && std::strchr(ip + 7, '.')) {
            std::memmove(ip, ip + 7, std::strlen(ip + 7) + 1);
        }
    }
    if (ipOut) *ipOut = ip;
    // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "[" + string.
    const bool bracket = ss.ss_family == AF_INET6 && !std::strchr(ip, '.');
    std::string out;
    if (bracket) out += '[';
    out += ip;
    if (bracket) out += ']';
    out += ':';
    out += std::to_string(port);
    return out;
}

}  // namespace moat::net
