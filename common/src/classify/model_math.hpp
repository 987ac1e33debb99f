#pragma once
// What the category model's format, prediction and training share (common/src/classify only).
#include <algorithm>
#include <cmath>
#include <cstddef>

namespace ticketflow::classify::detail {

inline constexpr float kIdfScale = 2048.0f;  // idf weights are stored as uint16 in units of 1/2048

inline void softmaxInPlace(double* z, std::size_t n) {
  double mx = z[0];
  for (std::size_t c = 1; c < n; ++c) mx = std::max(mx, z[c]);
  double sum = 0;
  for (std::size_t c = 0; c < n; ++c) {
    z[c] = std::exp(z[c] - mx);
    sum += z[c];
  }
  for (std::size_t c = 0; c < n; ++c) z[c] /= sum;
}

}  // namespace ticketflow::classify::detail
