// eval routing, train escalation: shadow evaluation's agreement, and the escalation verifier
// trained on its labels.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "pipeline/agreement_report.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/feedback_store.hpp"
#include "ticketflow/redis/pool.hpp"
#include "ticketflow/redis/route_shares.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::app {

namespace {

using Steady = std::chrono::steady_clock;

int runEvalRouting(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const auto pool = connectConfigured(config);
  redis::AgreementStore store(pool, config.redis.key_prefix);
  if (auto out = args.find("export-labels")) {
    auto labels = store.labels();
    if (!labels) throw std::runtime_error(labels.error().message);
    std::ofstream file(*out, std::ios::trunc);
    if (!file) throw std::runtime_error(*out + ": cannot write");
    for (const auto& l : *labels) file << l.toJson().dump() << "\n";
    if (!file.flush()) throw std::runtime_error(*out + ": write failed");
    std::cout << "wrote " << labels->size() << " shadow labels to " << *out << "\n";
  }
  auto table = store.table();
  if (!table) throw std::runtime_error(table.error().message);
  std::cout << pipeline::agreementText(*table, config.shadow.reference_tier);
  redis::RouteShareStore shares(pool, config.redis.key_prefix);
  if (config.routing.targets.enabled()) {
    auto shared = shares.thresholds();
    if (!shared) throw std::runtime_error(shared.error().message);
    const auto t = shared->value_or(classify::RouteThresholds::configured(config.classifier.difficulty));
    std::cout << "\nrouting.targets:";
    for (const auto& [tier, share] : config.routing.targets.shares) std::cout << " " << tier << " " << fixed(share);
    std::cout << "\ndifficulty thresholds in force"
              << (shared->has_value() ? "" : " (the configured ones, never adjusted)") << ": easy_below "
              << fixed(t.easy_below) << ", hard_from " << fixed(t.hard_from) << "\n";
    for (const auto& [category, easy] : t.easy_below_by_category)
      std::cout << "  " << category << ": easy_below " << fixed(std::min(easy, t.hard_from))
                << " (kept: the easy tier is below the quality floor there)\n";
  }
  if (args.has("reset")) {
    if (auto st = store.reset(); !st) throw std::runtime_error(st.error().message);
    if (auto st = shares.reset(config.classifier.difficulty); !st) throw std::runtime_error(st.error().message);
    std::cout << "shadow counts and labels forgotten; difficulty thresholds back to the configured ones\n";
  }
  return kExitOk;
}

// The area under the ROC curve of `score` for telling agreed from not (ties count half).
double aucOf(const std::vector<std::pair<double, bool>>& scored) {
  std::vector<std::pair<double, bool>> s = scored;
  std::sort(s.begin(), s.end());
  double positives = 0, negatives = 0, rank_sum = 0;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    while (j < s.size() && s[j].first == s[i].first) ++j;
    const double mid_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2.0;  // 1-based average
    for (std::size_t k = i; k < j; ++k) {
      if (s[k].second) {
        rank_sum += mid_rank;
        ++positives;
      } else {
        ++negatives;
      }
    }
    i = j;
  }
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

int runTrainEscalation(const cli::ParsedArgs& args) {
  const std::string out = args.get("out");
  if (out.empty()) throw cli::UsageError("--out is required");
  std::vector<classify::AgreementLabel> labels;
  if (auto path = args.find("labels")) {
    std::ifstream in(*path);
    if (!in) throw std::runtime_error(*path + ": cannot open");
    std::size_t line_no = 0;
    constexpr std::size_t kMaxLabelLine = 64 * 1024;  // a label is a few hundred bytes
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.empty()) continue;
      if (line.size() > kMaxLabelLine)
        throw std::runtime_error(*path + ":" + std::to_string(line_no) + ": line longer than " +
                                 std::to_string(kMaxLabelLine) + " bytes: not a label");
      auto label = classify::AgreementLabel::fromJson(nlohmann::json::parse(line, nullptr, false));
      if (!label) throw std::runtime_error(*path + ":" + std::to_string(line_no) + ": " + label.error().message);
      labels.push_back(std::move(*label));
    }
  } else {
    const Config config = loadConfigOption(args);
    redis::AgreementStore store(connectConfigured(config), config.redis.key_prefix);
    auto stored = store.labels();
    if (!stored) throw std::runtime_error(stored.error().message);
    labels = std::move(*stored);
  }
  if (args.has("feedback")) {
    // The helpdesk's verdicts on final answers (feedback role), after the shadow labels.
    auto from_feedback = openFeedbackStore(loadConfigOption(args)).escalationLabels();
    if (!from_feedback) throw std::runtime_error("feedback: " + from_feedback.error().message);
    std::cout << "added " << from_feedback->size() << " labels from the helpdesk's feedback\n";
    labels.insert(labels.end(), from_feedback->begin(), from_feedback->end());
  }
  if (labels.size() < 20)
    throw std::runtime_error("only " + std::to_string(labels.size()) + " labels: too few to train on");
  classify::EscalationTrainOptions options;
  options.min_tier_examples = static_cast<int>(args.getInt("min-tier-examples", 1, 1'000'000));
  options.l2 = args.getDouble("l2");
  if (!(options.l2 >= 0 && options.l2 <= 10)) throw cli::UsageError("--l2: expected a number from 0 to 10");
  // Held-out check first: every fifth example, by position.
  std::vector<classify::AgreementLabel> fit, held_out;
  for (std::size_t i = 0; i < labels.size(); ++i) (i % 5 == 4 ? held_out : fit).push_back(labels[i]);
  const auto trial = classify::EscalationModel::train(fit, options);
  std::map<std::string, std::vector<std::pair<double, bool>>> verifier, stated;
  for (const auto& l : held_out) {
    verifier[l.tier].push_back({trial.agreement(l.tier, l.features), l.agreed});
    stated[l.tier].push_back({l.features.stated_confidence, l.agreed});
  }
  std::cout << "escalation verifier: " << labels.size() << " labels; held out every fifth (" << held_out.size()
            << ")\n";
  for (const auto& [tier, scored] : verifier) {
    std::size_t agreed = 0;
    for (const auto& [score, ok] : scored) agreed += ok ? 1 : 0;
    std::cout << "  " << std::left << std::setw(10) << tier << std::right << std::setw(6) << scored.size()
              << " held out, " << std::fixed << std::setprecision(1)
              << 100.0 * static_cast<double>(agreed) / static_cast<double>(scored.size()) << "% agreed; AUC verifier "
              << std::setprecision(3) << aucOf(scored) << ", stated confidence alone " << aucOf(stated[tier]) << "\n";
  }
  const auto model = classify::EscalationModel::train(labels, options);
  std::ofstream file(out, std::ios::trunc);
  if (!file) throw std::runtime_error(out + ": cannot write");
  file << model.toJson();
  if (!file.flush()) throw std::runtime_error(out + ": write failed");
  std::cout << "wrote " << out << " (trained on all " << labels.size()
            << " labels); use it with classifier.escalation_model\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> routingCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec scope{"scope", "S", "global, tenant or tier", ""};
  const cli::OptionSpec name{"name", "NAME", "tenant or tier name (not for global)", ""};
  const cli::OptionSpec period{"period", "P", "day or month (UTC)", ""};
  return {
      {{"eval routing",
        "print shadow evaluation's agreement per tier and category",
        "",
        0,
        0,
        {cfg,
         {"export-labels", "FILE", "also write the stored training labels as JSON lines", ""},
         {"reset", "", "then forget the counts and labels and the moved thresholds (after a model or profile change)",
          ""}},
        "Reads what the shadow role measured (Redis): each tier's agreement with the reference tier on\n"
        "category and needs_human per category, with 95% Wilson intervals, and the estimated agreement of\n"
        "all final model answers. With routing.targets, the difficulty thresholds in force."},
       runEvalRouting,
       ""},
      {{"train escalation",
        "train the escalation verifier on shadow labels",
        "",
        0,
        0,
        {cfg,
         {"labels", "FILE", "labels as JSON lines (eval routing --export-labels); default: Redis's", ""},
         {"out", "FILE", "model file to write", ""},
         {"min-tier-examples", "N", "a tier with fewer labels uses the pooled weights", "200"},
         {"l2", "X", "L2 strength per example", "0.001"},
         {"feedback", "", "also learn the helpdesk's verdicts (feedback role, in the Redis of --config)", ""}},
        "Fits a logistic regression per tier (and one pooled) on the answer features of each shadow\n"
        "comparison against whether the reference agreed (with --feedback, also of each answer the\n"
        "helpdesk corrected, resolved with or reopened); prints a held-out AUC against the model's\n"
        "stated confidence alone, then writes the model trained on every label."},
       runTrainEscalation,
       ""},
  };
}

}  // namespace ticketflow::app
