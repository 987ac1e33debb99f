#pragma once
// Ticket difficulty: a transparent weighted score over named signals, mapped to easy / medium /
// hard by two thresholds from config (classifier.difficulty).
//
// Each signal is a number in [0,1] computed from the text (and the predicted category); the
// score is clamp(bias + sum(weight * signal), 0, 1). Weights come from
// classifier.difficulty.weights (signal name -> weight; "bias" is the intercept); signals the
// config does not name keep their built-in weights. Every decision can be printed signal by
// signal (`ticketflow classify --explain`).
//
// Threading: DifficultyScorer is immutable after construction and safe to share.
// Errors: an unknown signal name in the weights throws std::invalid_argument at construction
// (a start-up fault).

#include <string>
#include <string_view>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"

namespace ticketflow::classify {

// The levels are the domain's (domain/messages.hpp): one concept, one definition.
using ticketflow::Difficulty;
using ticketflow::difficultyName;

struct SignalValue {
  std::string name;
  double value = 0;   // in [0,1]
  double weight = 0;  // from config or built in
};

struct DifficultyResult {
  double score = 0;  // in [0,1]
  Difficulty level = Difficulty::kEasy;
  std::vector<SignalValue> signals;
};

class DifficultyScorer {
 public:
  explicit DifficultyScorer(const DifficultyConfig& config);

  // `category` is the predicted category (may be empty); it feeds the category prior signal.
  DifficultyResult score(std::string_view text, std::string_view category = {}) const;
  Difficulty levelFor(double score) const;

  // The signal names, in output order ("bias" first), and the built-in weights.
  static const std::vector<std::string>& signalNames();
  static double builtinWeight(const std::string& name);

 private:
  double easy_below_;
  double hard_from_;
  std::vector<double> weights_;  // parallel to signalNames()
};

// Thresholds that split `scores` into the given easy/medium/hard shares (each in [0,1], summing
// to 1 within 0.01): easy_below is the score below which the easy share lies, hard_from the
// one at and above which the hard share lies.
struct Thresholds {
  double easy_below = 0;
  double hard_from = 0;
};
// The level of a score under `thresholds`: easy below easy_below, hard from hard_from.
Difficulty levelFor(double score, const Thresholds& thresholds);

Result<Thresholds> thresholdsForShares(std::vector<double> scores, double easy_share, double medium_share,
                                       double hard_share);

// Rewrites the values of the `easy_below:` and `hard_from:` keys under classifier.difficulty in
// YAML text, keeping everything else byte for byte (comments included). Errors when either key
// is not found exactly once.
Result<std::string> rewriteDifficultyThresholds(const std::string& yaml_text, const Thresholds& thresholds);

}  // namespace ticketflow::classify
