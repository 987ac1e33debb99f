#include "projection.hpp"

#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

namespace ticketflow::triage {
namespace {

struct Sample {
  double cost = 0;
  double frontier = 0;
};

LiveCalibration::Cell cellOf(const std::vector<Sample>& samples) {
  LiveCalibration::Cell c;
  c.samples = samples.size();
  if (samples.empty()) return c;
  std::vector<double> costs;
  for (const auto& s : samples) {
    costs.push_back(s.cost);
    c.frontier_mean += s.frontier;
  }
  c.frontier_mean /= static_cast<double>(samples.size());
  for (double x : costs) c.mean += x;
  c.mean /= static_cast<double>(costs.size());
  if (costs.size() > 1) {
    for (double x : costs) c.variance += (x - c.mean) * (x - c.mean);
    c.variance /= static_cast<double>(costs.size() - 1);
  }
  return c;
}

}  // namespace

Result<LiveCalibration> LiveCalibration::fromStateFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::invalidArgument("--calibration " + path + ": cannot read the file");
  std::map<std::pair<std::string, Difficulty>, std::vector<Sample>> cells;
  std::map<Difficulty, std::vector<Sample>> levels;
  std::vector<Sample> all;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("outcome") || !j["outcome"].is_object()) continue;
    const auto& o = j["outcome"];
    // Answered by a model: not a dead letter, cache hit or budget hand-off (the dry run has none).
    if (o.value("dead_lettered", false) || o.value("cache", "miss") != "miss" || !o.contains("cost") ||
        o.value("model", "").empty())
      continue;
    const auto difficulty = parseDifficulty(o.value("difficulty", "medium")).value_or(Difficulty::kMedium);
    const Sample sample{o["cost"].is_number() ? o["cost"].get<double>() : 0.0,
                        o.contains("frontier") && o["frontier"].is_number() ? o["frontier"].get<double>() : 0.0};
    cells[{o.value("category", ""), difficulty}].push_back(sample);
    levels[difficulty].push_back(sample);
    all.push_back(sample);
  }
  if (all.size() < 2)
    return Error::invalidArgument("--calibration " + path + ": " + (all.empty() ? "no ticket" : "one ticket only") +
                                  " answered by a model in it (a live `triage` run's resume file is needed)");
  LiveCalibration c;
  for (const auto& [key, costs] : cells) c.cells_[key] = cellOf(costs);
  for (const auto& [level, costs] : levels) c.by_difficulty_[level] = cellOf(costs);
  c.all_ = cellOf(all);
  return c;
}

const LiveCalibration::Cell& LiveCalibration::forTicket(const std::string& category, Difficulty difficulty) const {
  if (auto it = cells_.find({category, difficulty}); it != cells_.end() && it->second.samples >= kMinSamples)
    return it->second;
  if (auto it = by_difficulty_.find(difficulty); it != by_difficulty_.end() && it->second.samples >= kMinSamples)
    return it->second;
  return all_;
}

void ProjectionRange::add(const LiveCalibration::Cell& cell) {
  ++tickets_[&cell];
}

namespace {

// The total's mean and standard deviation: k tickets from a cell of n samples vary by k s^2
// (each ticket's own spread) and k^2 s^2 / n (the mean's uncertainty).
std::pair<double, double> totalOf(const std::map<const LiveCalibration::Cell*, std::size_t>& tickets) {
  double mean = 0, variance = 0;
  for (const auto& [cell, k] : tickets) {
    const double n = static_cast<double>(std::max<std::size_t>(cell->samples, 1));
    const double kd = static_cast<double>(k);
    mean += kd * cell->mean;
    variance += kd * cell->variance + kd * kd * cell->variance / n;
  }
  return {mean, std::sqrt(variance)};
}

}  // namespace

MicroUsd ProjectionRange::low() const {
  const auto [mean, sd] = totalOf(tickets_);
  return std::max<MicroUsd>(0, std::llround(mean - 1.96 * sd));
}

MicroUsd ProjectionRange::high() const {
  const auto [mean, sd] = totalOf(tickets_);
  return std::llround(mean + 1.96 * sd);
}

}  // namespace ticketflow::triage
