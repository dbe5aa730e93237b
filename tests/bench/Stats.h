#pragma once
// Percentiles over recorded samples (nearest-rank on a sorted copy).

#include <cstdint>
#include <vector>

namespace moat::bench {

// p in [0, 100]; 0 when empty. Sorts `samples` in place.
double percentile(std::vector<int64_t>& samples, double p);

}  // namespace moat::bench
