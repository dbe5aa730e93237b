#include "tests/bench/ProcStats.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace moat::bench {

bool parseWatched(const std::vector<std::string>& specs, std::vector<Watched>& out,
                  std::string& error) {
    for (const auto& s : specs) {
        Watched w;
        auto eq = s.find('=');
        std::string pid = eq == std::string::npos ? s : s.substr(eq + 1);
        w.label = eq == std::string::npos ? s : s.substr(0, eq);
        char* end = nullptr;
        long v = std::strtol(pid.c_str(), &end, 10);
        if (pid.empty() || *end != '\0' || v <= 0 || w.label.empty()) {
            error = "--pid: expected LABEL=PID, got '" + s + "'";
            return false;
        }
        w.pid = static_cast<int>(v);
        if (cpuMicros(w.pid) < 0) {
            error = "--pid: no process " + pid;
            return false;
        }
        out.push_back(w);
    }
    return true;
}

int64_t cpuMicros(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return -1;
    // The command name (field 2) may hold spaces; fields after the last ')' are fixed.
    auto close = line.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream in(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    // Fields from 3 (state); utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && (in >> field); ++i) {
        if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    static const long ticks = sysconf(_SC_CLK_TCK);
    return static_cast<int64_t>((utime + stime) * 1000000ULL /
                                static_cast<unsigned long long>(ticks));
}

int64_t rssKiB(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
    return -1;
}

void CpuWindow::start() {
    begin_.clear();
    for (const auto& p : procs_) begin_.push_back(cpuMicros(p.pid));
}

void CpuWindow::stop() {
    end_.clear();
    for (const auto& p : procs_) end_.push_back(cpuMicros(p.pid));
}

Json CpuWindow::perUnit(double units, const std::string& unitName) const {
    Json j;
    double total = 0;
    for (size_t i = 0; i < procs_.size() && i < end_.size(); ++i) {
        double us = static_cast<double>(end_[i] - begin_[i]);
        total += us;
        double per = units > 0 ? us / units : 0;
        std::printf("  cpu %-10s %9.2f us/%s  (%.0f ms total)\n", procs_[i].label.c_str(), per,
                    unitName.c_str(), us / 1000);
        j.add(procs_[i].label, per);
    }
    if (!procs_.empty()) {
        double per = units > 0 ? total / units : 0;
        std::printf("  cpu %-10s %9.2f us/%s\n", "total", per, unitName.c_str());
        j.add("total", per);
    }
    return j;
}

}  // namespace moat::bench
