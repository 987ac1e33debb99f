#pragma once
// Batch triage of a ticket file, and the figures a helpdesk wants from it: what the demo and
// `ticketflow triage` run.
//
// runTriage() reads the file (JSON Lines or CSV, a column map for other systems' exports) and
// then either
// - dry run (dry_run.hpp): classifies and routes each ticket locally, prices it on its tier's
//   primary model (cost_model.hpp; or by a live pilot's costs, projection.hpp), and replays the
//   stream through the real semantic cache on a private redis-server to project cache hits, with
//   no model call; or
// - live (live_run.hpp): produces the tickets to the inbound topic (of the configured cluster, or
//   of a local stack with the whole pipeline in this process when `embedded`) and collects one
//   outcome per ticket from the updates and dead-letter topics. A live run is resumable through
//   its resume file (state_file.hpp).
//
// The report (totals.hpp, report.hpp): counts per category x difficulty and per tier, actual or
// projected cost per tier against the same tickets all sent to the frontier tier, cache hits and
// the most repeated issues (cache clusters), latency percentiles, degraded and needs-human tickets.

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "local_stack/local_stack.hpp"
#include "outcome.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/domain/ticket_file.hpp"

namespace ticketflow::triage {

struct TriageProgress {
  std::size_t total = 0, submitted = 0, done = 0;
  double seconds = 0;
};

struct TriageOptions {
  std::string path;
  ColumnMap columns;
  TicketDefaults defaults;
  std::size_t limit = 0;  // 0: every ticket of the file
  bool dry_run = false;
  bool embedded = false;                   // live run on a local stack started here
  local_stack::LocalStackOptions local;    // embedded
  std::string state_path;                  // live runs: the resume file ("" for none)
  double submit_rate = 0;                  // tickets/s (0: as fast as the broker takes them)
  std::chrono::seconds idle_timeout{180};  // live: give up after this long without an outcome
  std::int64_t assumed_output_tokens = 350;
  std::string calibration_path;          // dry run: an earlier live run's resume file to price by (projection.hpp)
  std::ostream* pipeline_log = nullptr;  // embedded: where the roles' JSON logs go (null: discarded)
  std::string updates_copy;              // live: also append every update as a JSON line here ("" for none)
  // Embedded: write the run's shadow comparisons here as escalation-verifier labels ("" for none).
  std::string shadow_labels;
  // Called on the calling thread: every 256 tickets (dry run) or at most every 200 ms (live), and at the end.
  std::function<void(const TriageProgress&)> progress;
};

// Throws std::runtime_error (unreadable file, a broken local stack) or ConfigError.
TriageReport runTriage(Config config, const TriageOptions& options);

}  // namespace ticketflow::triage
