// bench classifier: featurise+classify on one thread, and the difficulty scorer beside it.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>

#include "cli/command.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/classify/labelled_data.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/stats.hpp"

namespace ticketflow::app {
namespace {

int runBench(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const std::string path = categoryModelPath(args, config);
  const classify::CategoryModel model = loadCategoryModel(path);
  std::string data_path = args.get("data");
  if (data_path.empty()) throw cli::UsageError("--data is required (e.g. ../shared/data/it-tickets/dev.jsonl)");
  auto data = classify::readLabelledFile(data_path, args.get("text-col"), args.get("label-col"));
  if (!data) throw std::runtime_error(data.error().message);
  const int rounds = static_cast<int>(args.getInt("rounds", 1, 1000));
  classify::FeatureWorkspace ws;
  classify::Prediction p;
  // Warm-up pass: sizes the workspace and touches the weights.
  std::size_t checksum = 0;
  for (const auto& d : *data) {
    model.predictInto(d.text, ws, p);
    checksum += static_cast<std::size_t>(p.label);
  }
  std::vector<double> per_ticket_ns;
  per_ticket_ns.reserve(data->size() * static_cast<std::size_t>(rounds));
  std::size_t bytes = 0;
  // CPU time as well as elapsed time: on a shared machine the process is preempted, and CPU
  // seconds show what one core does when it runs.
  const std::clock_t cpu0 = std::clock();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& d : *data) {
      const auto a = std::chrono::steady_clock::now();
      model.predictInto(d.text, ws, p);
      const auto b = std::chrono::steady_clock::now();
      per_ticket_ns.push_back(std::chrono::duration<double, std::nano>(b - a).count());
      checksum += static_cast<std::size_t>(p.label);
      bytes += d.text.size();
    }
  }
  const double total = secondsSince(t0);
  const double cpu_seconds = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  std::sort(per_ticket_ns.begin(), per_ticket_ns.end());
  auto pct = [&](double q) { return percentileOfSorted(per_ticket_ns, q) / 1000.0; };
  const double n = static_cast<double>(per_ticket_ns.size());
  std::cout << "classifier benchmark: featurise+classify, one thread, model " << path << "\n"
            << "  data " << data_path << ": " << data->size() << " tickets x " << rounds << " rounds, mean "
            << bytes / per_ticket_ns.size() << " bytes/ticket\n"
            << "  throughput " << static_cast<long long>(n / total) << " tickets/s elapsed, "
            << static_cast<long long>(n / cpu_seconds) << " tickets per CPU-second\n"
            << "  latency per ticket: p50 " << fixed(pct(0.50), 2) << " us, p90 " << fixed(pct(0.90), 2) << " us, p99 "
            << fixed(pct(0.99), 2) << " us, max " << fixed(per_ticket_ns.back() / 1000.0, 2) << " us\n"
            << "  (label checksum " << checksum % 1000003 << ")\n";
  // The difficulty scorer runs beside the model in the intake role; its cost is shown apart.
  const classify::DifficultyScorer scorer(config.classifier.difficulty);
  double score_sum = 0;
  const auto d0 = std::chrono::steady_clock::now();
  for (const auto& d : *data) score_sum += scorer.score(d.text, d.label).score;
  const double dsec = secondsSince(d0);
  std::cout << "difficulty scoring: " << static_cast<long long>(static_cast<double>(data->size()) / dsec)
            << " tickets/s (mean score " << fixed(score_sum / static_cast<double>(data->size()), 3) << ")\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> classifierBenchCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec model{"model", "MODEL", "model file (default: the configured one)", ""};
  const cli::OptionSpec text_col{"text-col", "C", "text column", "text"};
  const cli::OptionSpec label_col{"label-col", "L", "label column", "category"};
  return {
      {{"bench classifier",
        "benchmark featurise+classify",
        "",
        0,
        0,
        {cfg,
         model,
         {"data", "FILE", "tickets to classify", ""},
         text_col,
         label_col,
         {"rounds", "N", "passes over the data", "3"}}},
       runBench},
  };
}

}  // namespace ticketflow::app
