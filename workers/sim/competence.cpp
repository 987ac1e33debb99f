#include "competence.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace ticketflow::sim {
namespace {

double logit(double p) {
  p = std::clamp(p, 1e-6, 1 - 1e-6);
  return std::log(p / (1 - p));
}

double sigmoid(double x) {
  return 1 / (1 + std::exp(-x));
}

}  // namespace

std::string labelKey(std::string_view body) {
  std::string key;
  bool space = false;
  for (char c : body) {
    if (key.size() >= 160) break;
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !key.empty();
      continue;
    }
    if (space) key.push_back(' ');
    space = false;
    key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return key.substr(0, 160);
}

double uniformFrom(std::uint64_t hash) {
  hash ^= hash >> 33;  // the low bits of FNV are the weakest: mix before taking 53 of them
  hash *= 0xff51afd7ed558ccdULL;
  hash ^= hash >> 33;
  return static_cast<double>(hash >> 11) / 9007199254740992.0;
}

double normalFrom(std::uint64_t hash_a, std::uint64_t hash_b) {
  const double u1 = std::max(uniformFrom(hash_a), 1e-12);
  const double u2 = uniformFrom(hash_b);
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * 3.14159265358979323846 * u2);  // Box-Muller
}

double latentDifficulty(const std::string& lowered_text, bool runbook_matched, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ULL ^ seed ^ 0x5eedd1ff1c0ULL;
  std::size_t words = 0;
  bool in_word = false;
  for (unsigned char c : lowered_text) {
    h = (h ^ c) * 1099511628211ULL;
    const bool letter = !std::isspace(c);
    if (letter && !in_word) ++words;
    in_word = letter;
  }
  // 20 words or fewer: 0; 320 words or more: 1.
  const double length = std::clamp(std::log2(std::max<double>(words, 1) / 20.0) / 4.0, 0.0, 1.0);
  return std::clamp(0.5 * uniformFrom(h) + 0.3 * length + 0.2 * (runbook_matched ? 0.0 : 1.0), 0.0, 1.0);
}

double rightProbability(const Competence& c, double difficulty, const std::string& true_category) {
  const double d = std::clamp(difficulty, 0.0, 1.0);
  double p = d < 0.5 ? c.right_easy + (c.right_medium - c.right_easy) * (d / 0.5)
                     : c.right_medium + (c.right_hard - c.right_medium) * ((d - 0.5) / 0.5);
  if (auto it = c.category_skill.find(true_category); it != c.category_skill.end()) p = sigmoid(logit(p) + it->second);
  return std::clamp(p, 0.0, 1.0);
}

double statedConfidence(const Competence& c, double right_probability, double standard_normal) {
  return sigmoid(c.slope * logit(right_probability) + c.overconfidence + c.noise * standard_normal);
}

}  // namespace ticketflow::sim
