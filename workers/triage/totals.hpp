#pragma once
// The figures of a triage run, summed once from its outcomes for the text summary and the HTML
// report (report.hpp).

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "outcome.hpp"

namespace ticketflow::triage {

struct RepeatedIssue {
  std::string source_ticket_id, tenant, category, subject;
  std::size_t tickets = 0;  // the source ticket and the ones answered from it
};

struct TriageTotals {
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

TriageTotals totalsOf(const TriageReport& report);

}  // namespace ticketflow::triage
