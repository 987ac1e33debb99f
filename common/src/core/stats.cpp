#include "ticketflow/core/stats.hpp"

#include <algorithm>
#include <cmath>

namespace ticketflow {

double percentileOfSorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  // The epsilon keeps 0.07 * 100 (7.000000000000001 in binary) at rank 7, not 8.
  const double rank = std::ceil(std::clamp(p, 0.0, 1.0) * static_cast<double>(sorted.size()) - 1e-9);
  const auto index = static_cast<std::size_t>(std::max(rank, 1.0)) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return percentileOfSorted(values, p);
}

}  // namespace ticketflow
