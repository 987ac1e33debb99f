#pragma once
// The escalation verifier: how likely the reference tier (frontier) would give the answer a
// cheaper tier just gave, on the fields a helpdesk acts on (category and needs_human). A tier
// passes the ticket up when that chance is below its tiers[].escalate_below_agreement. A model's
// own stated confidence is a weak signal (docs/simulator.md cites the figures); what the answer
// says against what the classifier saw is a strong one, so the verifier weighs both.
//
// A logistic regression per tier over AnswerFeatures, trained (`ticketflow train escalation`) on
// shadow comparisons and helpdesk feedback: each a tier's features and whether the reference
// agreed. Tiers it has no weights for use the pooled weights.
//
// Model file: JSON {"format": "ticketflow-escalation", "version": 1, "features": [names],
// "pooled": {"weights": [...], "examples": N}, "tiers": {"fast": {...}}}; a weight per feature,
// in the order of "features", the first the bias.
//
// Threading: a loaded model is immutable; agreement() may be called from any thread.

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ticketflow/core/result.hpp"

namespace ticketflow::classify {

// What the verifier sees of a ticket and one tier's answer to it.
struct AnswerFeatures {
  double stated_confidence = 0;          // the model's own, 0..1
  bool category_agrees = false;          // the answer's category_check is the classifier's category
  double classifier_confidence = 0;      // the classifier's probability of its own category
  double classifier_prob_of_answer = 0;  // the classifier's probability of the answer's category
  bool repaired = false;                 // the reply needed a repair round to parse
  bool needs_human = false;              // the answer hands the ticket to a person
  int steps = 0;                         // resolution steps given
  double difficulty_score = 0;           // intake's difficulty score, 0..1

  nlohmann::json toJson() const;
  static Result<AnswerFeatures> fromJson(const nlohmann::json& j);
};

// The model's inputs, in file order: a bias and then transforms of AnswerFeatures.
inline constexpr std::array<std::string_view, 10> kEscalationFeatureNames = {"bias",
                                                                             "stated_confidence",
                                                                             "category_agrees",
                                                                             "classifier_confidence",
                                                                             "classifier_prob_of_answer",
                                                                             "agrees_x_confidence",
                                                                             "repaired",
                                                                             "needs_human",
                                                                             "steps",
                                                                             "difficulty_score"};
std::vector<double> escalationInputs(const AnswerFeatures& f);

// A tier's answer and whether the reference tier agreed with it: one training example.
struct AgreementLabel {
  std::string tier;
  std::string category;  // the classifier's (for per-category figures)
  AnswerFeatures features;
  bool agreed = false;

  // {"tier", "category", "features", "agreed"}: a line of `eval routing --export-labels`.
  nlohmann::json toJson() const;
  static Result<AgreementLabel> fromJson(const nlohmann::json& j);
};

struct EscalationTrainOptions {
  double l2 = 1e-3;             // on every weight but the bias
  int iterations = 50;          // Newton steps (IRLS); stops earlier once the change is tiny
  int min_tier_examples = 200;  // fewer: the tier uses the pooled weights
};

class EscalationModel {
 public:
  // The shipped defaults (config/escalation_model.json, embedded in the binary).
  static const EscalationModel& builtin();
  static Result<EscalationModel> parse(std::string_view json_text, const std::string& source);
  static Result<EscalationModel> load(const std::string& path);
  static EscalationModel train(const std::vector<AgreementLabel>& labels, const EscalationTrainOptions& options = {});

  // The chance, 0..1, that the reference tier agrees with `tier`'s answer.
  double agreement(const std::string& tier, const AnswerFeatures& f) const;
  std::string toJson() const;
  // Examples the tier's own weights were trained on (0: it uses the pooled ones).
  int examplesFor(const std::string& tier) const;

 private:
  struct Weights {
    std::vector<double> w;  // one per kEscalationFeatureNames
    int examples = 0;
  };
  Weights pooled_;
  std::map<std::string, Weights> tiers_;
};

}  // namespace ticketflow::classify
