#pragma once
// What the process may use of the machine it runs on: open files and CPU cores. Containers
// make both smaller than the machine says (a 1,024-file soft limit, a CPU quota on a
// 64-core node), and both decide how many devices one gateway holds.

#include <cstdint>

namespace moat::net {

// Raises the soft open-file limit to the hard limit (as nginx's worker_rlimit_nofile or
// systemd's LimitNOFILE would). Returns the soft limit now in force.
uint64_t raiseOpenFileLimit();

// Cores this process may really use: the CPU affinity mask, further bounded by a cgroup CPU
// quota (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up; at least 1.
// `workers: auto` starts one event loop per such core.
unsigned usableCores();

}  // namespace moat::net
