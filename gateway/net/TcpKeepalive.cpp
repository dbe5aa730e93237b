#include "gateway/net/TcpKeepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace moat::net {

int enableTcpKeepalive(uv_tcp_t* handle, uint32_t idleSeconds) {
    uv_os_fd_t fd;
    if (int r = uv_fileno(reinterpret_cast<uv_handle_t*>(handle), &fd); r != 0) return r;
    const int idle = static_cast<int>(std::clamp<uint32_t>(idleSeconds, 1, 32767));
    // Probe interval: a tenth of the idle time, between 1 s and 75 s (the Linux default).
    const int interval = std::clamp(idle / 10, 1, 75);
    const int count = kTcpKeepaliveProbes;
    const int on = 1;
    // A peer that acknowledges nothing for idle + all probes is gone (also for data in flight).
    const unsigned userTimeoutMs = static_cast<unsigned>(idle + interval * count) * 1000u;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeoutMs, sizeof userTimeoutMs) != 0)
        return -errno;
    return 0;
}

}  // namespace moat::net
