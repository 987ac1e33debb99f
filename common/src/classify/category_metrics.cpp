// Accuracy, macro-F1, per-class figures and calibration of a category model's predictions.
#include <algorithm>
#include <cmath>
#include <map>

#include "ticketflow/classify/category_model.hpp"

namespace ticketflow::classify {

EvalMetrics computeMetrics(const std::vector<int>& truth, const std::vector<int>& predicted,
                           const std::vector<double>& confidence, std::size_t classes) {
  EvalMetrics m;
  m.confusion.assign(classes, std::vector<std::size_t>(classes, 0));
  std::size_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    m.confusion[static_cast<std::size_t>(truth[i])][static_cast<std::size_t>(predicted[i])]++;
    if (truth[i] == predicted[i]) ++correct;
  }
  m.accuracy = truth.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(truth.size());
  m.per_class.resize(classes);
  double f1_sum = 0;
  for (std::size_t c = 0; c < classes; ++c) {
    std::size_t tp = m.confusion[c][c];
    std::size_t pred = 0;
    std::size_t actual = 0;
    for (std::size_t k = 0; k < classes; ++k) {
      pred += m.confusion[k][c];
      actual += m.confusion[c][k];
    }
    auto& pc = m.per_class[c];
    pc.support = actual;
    pc.precision = pred ? static_cast<double>(tp) / static_cast<double>(pred) : 0.0;
    pc.recall = actual ? static_cast<double>(tp) / static_cast<double>(actual) : 0.0;
    pc.f1 = (pc.precision + pc.recall) > 0 ? 2 * pc.precision * pc.recall / (pc.precision + pc.recall) : 0.0;
    f1_sum += pc.f1;
  }
  m.macro_f1 = classes ? f1_sum / static_cast<double>(classes) : 0.0;
  if (!confidence.empty() && !truth.empty()) {
    std::vector<double> conf_sum(10, 0), acc_sum(10, 0);
    std::vector<std::size_t> count(10, 0);
    for (std::size_t i = 0; i < truth.size(); ++i) {
      const auto bin = std::min<std::size_t>(9, static_cast<std::size_t>(confidence[i] * 10));
      conf_sum[bin] += confidence[i];
      acc_sum[bin] += truth[i] == predicted[i] ? 1.0 : 0.0;
      ++count[bin];
    }
    for (std::size_t k = 0; k < 10; ++k)
      if (count[k])
        m.expected_calibration_error += std::abs(acc_sum[k] - conf_sum[k]) / static_cast<double>(truth.size());
  }
  return m;
}

}  // namespace ticketflow::classify
