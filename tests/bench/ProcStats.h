#pragma once
// Server-side cost from /proc: CPU time (utime + stime of every thread, including threads
// that already exited, as /proc/PID/stat reports) and resident memory of the processes named
// with `--pid label=PID`. Read by the benchmark itself so the sampled window is exactly the
// measured one.

#include <cstdint>
#include <string>
#include <vector>

#include "tests/bench/Json.h"

namespace moat::bench {

struct Watched {
    std::string label;
    int pid = 0;
};

// "label=PID" or "PID" (label = the PID). False and error set on a malformed entry.
bool parseWatched(const std::vector<std::string>& specs, std::vector<Watched>& out,
                  std::string& error);

int64_t cpuMicros(int pid);  // -1 when unreadable
int64_t rssKiB(int pid);     // VmRSS; -1 when unreadable

// CPU consumed by each watched process between start() and stop().
class CpuWindow {
  public:
    explicit CpuWindow(std::vector<Watched> procs) : procs_(std::move(procs)) {}
    void start();
    void stop();
    bool empty() const { return procs_.empty(); }
    // Per process and "total": CPU microseconds divided by `units` (messages, handshakes).
    // Printed to stdout as `  cpu LABEL: X us/UNIT`.
    Json perUnit(double units, const std::string& unitName) const;

  private:
    std::vector<Watched> procs_;
    std::vector<int64_t> begin_, end_;
};

}  // namespace moat::bench
