#pragma once
// What a triage run produces, shared by the live run, the dry run, the resume file and the
// report: one outcome per ticket, and the run's report (outcomes in file order and what the
// summary says about the run itself).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ticketflow/core/clock.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/redis/agreement_store.hpp"

namespace ticketflow::triage {

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

struct TriageReport {
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

// One ticket of a file: ids are unique per tenant only.
inline std::string ticketKey(const std::string& tenant, const std::string& id) {
  return tenant + "/" + id;
}

using ticketflow::secondsSince;  // core/clock.hpp: the run's duration and its progress rate

}  // namespace ticketflow::triage
