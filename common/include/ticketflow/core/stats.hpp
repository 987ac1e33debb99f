#pragma once
// Percentiles for every figure the project prints (benchmarks, reports): one definition, so a
// p99 means the same thing in every command.

#include <vector>

namespace ticketflow {

// The nearest-rank percentile: the smallest value with at least a share `p` (0..1) of all the
// values at or below it; p = 0 gives the smallest, p = 1 the largest. 0 when there are none.
double percentile(std::vector<double> values, double p);
// The same over values already sorted ascending (nothing is copied).
double percentileOfSorted(const std::vector<double>& sorted, double p);

}  // namespace ticketflow
