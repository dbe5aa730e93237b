// auditConfig(): runs every check group and orders the findings.

#include "gateway/audit/ConfigAudit.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "gateway/audit/Checks.h"

namespace moat::audit {

std::vector<Finding> auditConfig(const config::Config& config,
                                 std::chrono::system_clock::time_point now) {
    Findings out;
    detail::auditListeners(config, out);
    detail::auditTlsFiles(config, now, out);
    detail::auditSettings(config, out);
    detail::auditPasswordFile(config, out);
    detail::auditToken(config, out);
    detail::auditPolicy(config, out);
    // High first, so the line that decides the exit status is the first one an operator sees.
    std::stable_sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) {
        return static_cast<int>(a.severity) < static_cast<int>(b.severity);
    });
    return out;
}

namespace detail {

bool isLoopbackHost(std::string_view host) {
    if (host == "localhost") return true;
    const std::string h(host);
    unsigned char v4[4];
    if (inet_pton(AF_INET, h.c_str(), v4) == 1) return v4[0] == 127;
    unsigned char v6[16];
    if (inet_pton(AF_INET6, h.c_str(), v6) == 1) {
        static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(v6, kLoopback, 16) == 0) return true;
        return std::memcmp(v6, kMappedPrefix, 12) == 0 && v6[12] == 127;
    }
    return false;  // a DNS name other than localhost may resolve anywhere
}

std::string describeHostPort(const config::HostPort& hp) {
    const bool v6 = hp.host.find(':') != std::string::npos;
    return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

}  // namespace detail
}  // namespace moat::audit
