#pragma once
// TCP keepalive probes on a client socket (CONTRACT §3 "Keepalive"): idle time, a few probes,
// and TCP_USER_TIMEOUT so unacknowledged data cannot hold a dead connection open either.
// libuv's uv_tcp_keepalive only sets the idle time, hence setsockopt.

#include <uv.h>

#include <cstdint>

namespace moat::net {

inline constexpr int kTcpKeepaliveProbes = 3;

// Returns 0 or a negative errno (the caller logs it; the connection goes on without probes).
int enableTcpKeepalive(uv_tcp_t* handle, uint32_t idleSeconds);

}  // namespace moat::net
