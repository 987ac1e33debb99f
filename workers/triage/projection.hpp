#pragma once
// A dry run's projection calibrated by what an earlier live run of tickets like these actually
// cost: `triage --dry-run --calibration STATE` reads a live run's resume file (a pilot of a few
// hundred tickets is enough) and prices each ticket the dry run sends to a model at the mean live
// cost of its (category, difficulty) cell: escalations, retries, repairs and the models' real
// answer lengths included. Cache hits are left out of the means (the dry run replays the cache
// itself). The all-frontier baseline is calibrated the same way (what each live ticket would have
// cost on the frontier tier's primary model with the tokens it really took). A cell with fewer than kMinSamples
// outcomes borrows its difficulty's, then everyone's. The total comes with a 95% range: the tickets' own spread plus
// the uncertainty of the means.

#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"

namespace ticketflow::triage {

class LiveCalibration {
 public:
  static constexpr std::size_t kMinSamples = 5;
  struct Cell {
    std::size_t samples = 0;
    double mean = 0;           // micro-USD per ticket
    double variance = 0;       // of one ticket's cost
    double frontier_mean = 0;  // the same tickets on the frontier tier's primary model, as answered
  };
  // kInvalidArgument when the file holds no live outcome answered by a model.
  static Result<LiveCalibration> fromStateFile(const std::string& path);
  const Cell& forTicket(const std::string& category, Difficulty difficulty) const;
  std::size_t outcomes() const { return all_.samples; }

 private:
  std::map<std::pair<std::string, Difficulty>, Cell> cells_;
  std::map<Difficulty, Cell> by_difficulty_;
  Cell all_;
};

// Sums projected tickets and gives the range of their total.
class ProjectionRange {
 public:
  void add(const LiveCalibration::Cell& cell);
  MicroUsd low() const;
  MicroUsd high() const;

 private:
  // Per cell (by address: cells live as long as their calibration): tickets projected with it.
  std::map<const LiveCalibration::Cell*, std::size_t> tickets_;
};

}  // namespace ticketflow::triage
