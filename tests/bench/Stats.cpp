#include "tests/bench/Stats.h"

#include <algorithm>
#include <cmath>

namespace moat::bench {

double percentile(std::vector<int64_t>& samples, double p) {
    if (samples.empty()) return 0;
    if (!std::is_sorted(samples.begin(), samples.end())) std::sort(samples.begin(), samples.end());
    double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
    size_t idx = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
    return static_cast<double>(samples[std::min(idx, samples.size() - 1)]);
}

}  // namespace moat::bench
