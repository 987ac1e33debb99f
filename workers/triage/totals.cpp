#include "totals.hpp"

#include <algorithm>
#include <sstream>

#include "ticketflow/core/stats.hpp"

namespace ticketflow::triage {

TriageTotals totalsOf(const TriageReport& report) {
  TriageTotals t;
  std::vector<double> latencies;
  std::map<std::string, RepeatedIssue> clusters;  // tenant/source id
  std::map<std::string, const TicketOutcome*> by_key;
  for (const auto& o : report.outcomes) by_key[ticketKey(o.tenant, o.ticket_id)] = &o;
  for (const auto& o : report.outcomes) {
    ++t.tickets;
    t.frontier_cost += o.frontier_micro_usd;
    if (o.dead_lettered) {
      ++t.dead_lettered;
      continue;
    }
    ++t.by_category_difficulty[o.category][difficultyName(o.difficulty)];
    ++t.by_tier[o.tier];
    t.cost_by_tier[o.tier] += o.cost_micro_usd;
    t.cost += o.cost_micro_usd;
    if (o.needs_human) ++t.needs_human;
    if (o.degraded) ++t.degraded;
    if (o.latency_ms >= 0) latencies.push_back(static_cast<double>(o.latency_ms));
    if (!report.dry_run) {
      const bool hit =
          o.cache == CacheStatus::kExact || o.cache == CacheStatus::kSemantic || o.cache == CacheStatus::kCoalesced;
      auto& flow = t.flow[{o.routed_tier.empty() ? o.tier : o.routed_tier, hit ? std::string("cache") : o.tier}];
      ++flow.tickets;
      if (hit) ++flow.reasons[cacheStatusName(o.cache)];
      std::stringstream moves(o.moves);
      for (std::string reason; std::getline(moves, reason, ',');)
        if (!reason.empty()) ++flow.reasons[reason];
      if (o.degraded) ++flow.reasons["fallback"];
    }
    if (!o.label.empty()) {
      ++t.classifier_vs_label.judged;
      t.classifier_vs_label.agreed += o.category == o.label;
      if (!o.answer_category.empty()) {
        auto& a = t.answer_vs_label_by_tier[o.tier];
        ++a.judged;
        a.agreed += o.answer_category == o.label;
      }
    }
    if (o.cache == CacheStatus::kExact || o.cache == CacheStatus::kSemantic || o.cache == CacheStatus::kCoalesced) {
      ++(o.cache == CacheStatus::kExact      ? t.cache_exact
         : o.cache == CacheStatus::kSemantic ? t.cache_semantic
                                             : t.cache_coalesced);
      auto source = by_key.find(ticketKey(o.tenant, o.cache_source));
      if (source != by_key.end()) t.saved_by_cache += source->second->cost_micro_usd;
      RepeatedIssue& c = clusters[ticketKey(o.tenant, o.cache_source)];
      if (c.tickets == 0) {
        c.tickets = 1;  // the source ticket itself
        c.source_ticket_id = o.cache_source;
        c.tenant = o.tenant;
        c.category = o.category;
        c.subject = source != by_key.end() ? source->second->subject : o.subject;
      }
      ++c.tickets;
    }
  }
  if (!latencies.empty()) {
    t.latency_p50_ms = static_cast<std::int64_t>(percentile(latencies, 0.50));  // whole ms in, whole ms out
    t.latency_p95_ms = static_cast<std::int64_t>(percentile(latencies, 0.95));
  }
  for (auto& [k, c] : clusters) t.repeated.push_back(c);
  std::stable_sort(t.repeated.begin(), t.repeated.end(),
                   [](const RepeatedIssue& a, const RepeatedIssue& b) { return a.tickets > b.tickets; });
  return t;
}

}  // namespace ticketflow::triage
