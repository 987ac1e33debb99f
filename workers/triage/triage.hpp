#pragma once
// Batch triage of a ticket file, and the figures a helpdesk wants from it: what the demo and
// `ticketflow triage` run.
//
// runBacklog() reads the file (JSON Lines or CSV, a column map for other systems' exports) and
// then either
// - dry run: classifies and routes each ticket locally, prices it on its tier's primary model
//   (prompt tokens estimated, output tokens assumed), and replays the stream through the real
//   semantic cache on a private redis-server to project cache hits, with no model call; or
// - live: produces the tickets to the inbound topic (of the configured cluster, or of a local
//   stack with the whole pipeline in this process when `embedded`) and collects one outcome per
//   ticket from the updates and dead-letter topics.
// A live run is resumable: a state file (JSON Lines, appended and flushed as work completes)
// records the run id, every ticket submitted and every outcome, so a second run with the same
// state file reports what finished, submits only what was never submitted (in embedded mode,
// whose broker does not survive, also what was submitted but not finished) and waits for the rest.
//
// The report: counts per category x difficulty and per tier, actual or projected cost per tier
// against the same tickets all sent to the frontier tier, cache hits and the most repeated
// issues (cache clusters), latency percentiles, degraded and needs-human tickets.

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/local_stack.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/domain/ticket_file.hpp"
#include "ticketflow/provider/prompt.hpp"
#include "ticketflow/redis/agreement_store.hpp"

namespace ticketflow::pipeline {

struct TicketOutcome {
  std::string ticket_id, tenant;
  std::string subject;  // for the report's tables (reports are for operators; logs never carry it)
  std::string category;
  std::string answer_category;  // live: what the answering model said the category is
  std::string label;            // the file's own category for the ticket (label or category column)
  Difficulty difficulty = Difficulty::kMedium;
  double confidence = 0;
  std::string tier, model;
  std::string routed_tier;  // live: where intake sent it ("" when unknown)
  std::string moves;        // live: why it moved, e.g. "low_confidence,budget_downgrade"
  CacheStatus cache = CacheStatus::kMiss;
  std::string cache_source;         // the ticket whose answer was reused
  MicroUsd cost_micro_usd = 0;      // actual (live) or projected (dry run)
  MicroUsd frontier_micro_usd = 0;  // the same ticket on the frontier tier's primary model
  TokenUsage usage;
  std::int64_t latency_ms = -1;  // -1: not measured (dry run, dead letter)
  bool degraded = false;
  bool needs_human = false;
  std::string needs_human_reason;
  bool dead_lettered = false;
  std::string error;  // dead letters: why
};

// Prices tickets on a tier's primary model.
class CostModel {
 public:
  CostModel(const Config& config, std::int64_t assumed_output_tokens);
  // The tier's primary model, prompt estimated, output assumed.
  MicroUsd projected(const std::string& tier, const Ticket& ticket, const std::string& category) const;
  // The frontier tier's primary model with `usage` when a call was made, else estimated.
  MicroUsd frontier(const Ticket& ticket, const std::string& category, const TokenUsage& usage) const;
  const std::string& frontierTier() const { return config_.tiers.back().name; }

 private:
  const ModelConfig& primaryOf(const std::string& tier) const;
  std::int64_t promptTokens(const Ticket& ticket, const std::string& category, const ModelConfig& model) const;
  const Config& config_;
  provider::PromptSet prompts_;
  std::int64_t output_tokens_;
};

struct BacklogProgress {
  std::size_t total = 0, submitted = 0, done = 0;
  double seconds = 0;
};

struct BacklogOptions {
  std::string path;
  ColumnMap columns;
  TicketDefaults defaults;
  std::size_t limit = 0;  // 0: every ticket of the file
  bool dry_run = false;
  bool embedded = false;                   // live run on a local stack started here
  LocalStackOptions local;                 // embedded
  std::string state_path;                  // live runs: the resume file ("" for none)
  double submit_rate = 0;                  // tickets/s (0: as fast as the broker takes them)
  std::chrono::seconds idle_timeout{180};  // live: give up after this long without an outcome
  std::int64_t assumed_output_tokens = 350;
  std::string calibration_path;          // dry run: an earlier live run's resume file to price by (projection.hpp)
  std::ostream* pipeline_log = nullptr;  // embedded: where the roles' JSON logs go (null: discarded)
  std::string updates_copy;              // live: also append every update as a JSON line here ("" for none)
  // Embedded: write the run's shadow comparisons here as escalation-verifier labels ("" for none).
  std::string shadow_labels;
  std::function<void(const BacklogProgress&)> progress;
};

struct BacklogReport {
  std::string source;
  bool dry_run = false;
  bool cache_projected = false;  // dry run: the semantic cache replay ran
  double seconds = 0;
  std::vector<std::string> tiers;  // cheapest first
  std::string frontier_tier;
  std::vector<TicketOutcome> outcomes;  // file order
  // Dry run with a calibration: the 95% range of the projected spend, and from how many outcomes.
  std::optional<std::pair<MicroUsd, MicroUsd>> projected_range;
  std::size_t calibration_outcomes = 0;
  std::vector<std::string> skipped;  // "line 12: why"
  std::size_t missing = 0;           // live: submitted, no outcome before the idle timeout
  std::string updates_topic;         // where the updates went
  std::string bootstrap_servers;
  // Embedded live runs: the ledger's settled spend for the period (for the demo's cross-check).
  std::optional<MicroUsd> ledger_settled;  // without shadow evaluation's spend
  // Embedded live runs with shadow evaluation: what it measured and what it cost (tier:shadow).
  std::optional<redis::AgreementTable> shadow;
  std::string shadow_reference;
  MicroUsd shadow_spent = 0;
};

// Throws std::runtime_error (unreadable file, a broken local stack) or ConfigError.
BacklogReport runBacklog(Config config, const BacklogOptions& options);

struct RepeatedIssue {
  std::string source_ticket_id, tenant, category, subject;
  std::size_t tickets = 0;  // the source ticket and the ones answered from it
};

struct BacklogTotals {
  std::size_t tickets = 0, cache_exact = 0, cache_semantic = 0, needs_human = 0, degraded = 0, dead_lettered = 0;
  std::size_t cache_coalesced = 0;  // live runs: served after waiting for a near-duplicate in flight
  std::size_t cacheHits() const { return cache_exact + cache_semantic + cache_coalesced; }
  std::map<std::string, std::map<std::string, std::size_t>> by_category_difficulty;  // category -> level -> n
  std::map<std::string, std::size_t> by_tier;
  std::map<std::string, MicroUsd> cost_by_tier;
  MicroUsd cost = 0, frontier_cost = 0, saved_by_cache = 0;
  std::optional<std::int64_t> latency_p50_ms, latency_p95_ms;
  std::vector<RepeatedIssue> repeated;  // largest first
  // Against the file's own labels, where it has them: the classifier's category, and the category
  // the answering model named (per tier that answered; cache hits count for the source's tier).
  struct Agreement {
    std::size_t judged = 0, agreed = 0;
  };
  Agreement classifier_vs_label;
  // Live runs: routed tier -> where the answer came from (a tier, or "cache"), with why it moved
  // (low_confidence, unusable_answer, budget_downgrade, fallback, exact, semantic, coalesced).
  struct Flow {
    std::size_t tickets = 0;
    std::map<std::string, std::size_t> reasons;
  };
  std::map<std::pair<std::string, std::string>, Flow> flow;
  std::map<std::string, Agreement> answer_vs_label_by_tier;
  double savingShare() const { return frontier_cost > 0 ? 1.0 - double(cost) / double(frontier_cost) : 0.0; }
};

BacklogTotals totalsOf(const BacklogReport& report);
// The summary the demo and triage print.
std::string textSummary(const BacklogReport& report, const BacklogTotals& totals);
// One self-contained HTML file with inline SVG charts (no scripts, no external resources).
std::string htmlReport(const BacklogReport& report, const BacklogTotals& totals);

}  // namespace ticketflow::pipeline
