#pragma once
// The dry run: classify, route and price every ticket locally with no model call (triage.hpp).

#include <vector>

#include "outcome.hpp"
#include "triage.hpp"

namespace ticketflow::triage {

// `tickets` in file order. Fills the outcomes, the cache projection and, with
// options.calibration_path, the calibrated range; the caller fills what is the same for both
// kinds of run (tiers, skipped rows). Throws ConfigError (no classifier model) or
// std::runtime_error (an unusable calibration file).
TriageReport dryRun(const Config& config, const TriageOptions& options, const std::vector<Ticket>& tickets);

}  // namespace ticketflow::triage
