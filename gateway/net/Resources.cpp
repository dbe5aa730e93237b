#include "gateway/net/Resources.h"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace moat::net {

namespace {

// Cores allowed by a quota of `quota` µs per `period` µs; 0 when there is no quota.
unsigned quotaCores(double quota, double period) {
    if (quota <= 0 || period <= 0) return 0;
    return static_cast<unsigned>(std::max(1.0, std::ceil(quota / period)));
}

unsigned cgroupCores() {
    // cgroup v2: "max 100000" (no quota) or "200000 100000" (2 cores).
    if (std::ifstream f("/sys/fs/cgroup/cpu.max"); f) {
        std::string quota;
        double period = 0;
        if (f >> quota >> period && quota != "max") {
            try {
                return quotaCores(std::stod(quota), period);
            } catch (...) {
                return 0;
            }
        }
        return 0;
    }
    // cgroup v1: quota -1 means none.
    std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    double quota = 0, period = 0;
    if (q >> quota && p >> period) return quotaCores(quota, period);
    return 0;
}

}  // namespace

uint64_t raiseOpenFileLimit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}

unsigned usableCores() {
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) cores = std::min(cores, static_cast<unsigned>(n));
    }
    if (unsigned quota = cgroupCores(); quota != 0) cores = std::min(cores, quota);
    return std::max(1u, cores);
}

}  // namespace moat::net
