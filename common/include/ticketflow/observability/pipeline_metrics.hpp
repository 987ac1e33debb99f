#pragma once
// The metric families every ticketflow role exports: names, help and labels declared once here,
// so dashboards and alerts have one catalogue (docs/operations.md lists it). Labels are bounded:
// role, tier, model, provider, sink, outcome and reason come from the configuration or from a
// fixed set; tenants (unbounded) never appear as labels.
//
// Ownership: the families live in the MetricsRegistry passed to the constructor, which must
// outlive this object. Thread-safe (the families are).

#include "ticketflow/observability/metrics.hpp"

namespace ticketflow::observability {

struct PipelineMetrics {
  explicit PipelineMetrics(MetricsRegistry& registry);

  // Stage engine, per role ("intake", "tier:fast", "results"); exported from the engine's stats.
  Family<Counter>& consumed;         // ticketflow_messages_consumed_total{role}
  Family<Counter>& succeeded;        // ticketflow_messages_succeeded_total{role}: outputs acknowledged
  Family<Counter>& retried;          // ticketflow_messages_retried_total{role}: failed attempts retried
  Family<Counter>& dead_lettered;    // ticketflow_messages_dead_lettered_total{role}
  Family<Counter>& offsets_gone;     // ticketflow_consumer_offsets_gone_total{role}
  Family<Counter>& records_lost;     // ticketflow_consumer_records_lost_total{role}
  Family<Gauge>& in_flight;          // ticketflow_messages_in_flight{role}
  Family<Gauge>& consumer_lag;       // ticketflow_consumer_lag{role,topic,partition}
  Family<Gauge>& partitions_paused;  // ticketflow_partitions_paused{role}
  // Outages (a dependency down: messages held, no attempt used), per role and cause.
  Family<Gauge>& outage_held;             // ticketflow_outage_held_messages{role,cause}: held now
  Family<Counter>& outage_held_total;     // ticketflow_outage_held_total{role,cause}: messages ever held
  Family<Counter>& outage_held_seconds;   // ticketflow_outage_held_seconds_total{role,cause}: summed over messages
  Family<Counter>& outage_dead_lettered;  // ticketflow_outage_dead_lettered_total{role,cause}: past stage.max_hold_s

  // Intake.
  Family<Counter>& routed;              // ticketflow_tickets_routed_total{tier,rule}
  Family<Counter>& cache_lookups;       // ticketflow_cache_lookups_total{result}: exact, semantic, miss, skipped
  Family<Histogram>& cache_similarity;  // ticketflow_cache_hit_similarity (hits only)
  Family<Counter>& cache_saved;         // ticketflow_cache_saved_micro_usd_total: what the cached calls cost
  Family<Histogram>& classify_seconds;  // ticketflow_classify_seconds
  Family<Gauge>& parked_tickets;        // ticketflow_parked_tickets: deferred by a cap, parked in this process

  // Tier pools.
  Family<Counter>& model_calls;           // ticketflow_model_calls_total{tier,model,provider,outcome}
  Family<Histogram>& model_call_seconds;  // ticketflow_model_call_seconds{tier,model,provider}
  Family<Counter>& model_retries;         // ticketflow_model_retries_total{tier,model}
  Family<Counter>& tokens;                // ticketflow_model_tokens_total{tier,model,direction}
  Family<Counter>& cost;                  // ticketflow_model_cost_micro_usd_total{tier,model,provider}
  Family<Gauge>& breaker_state;           // ticketflow_breaker_state{tier,model}: 0 closed, 1 half-open, 2 open
  Family<Counter>& rate_limit_waits;      // ticketflow_rate_limit_waits_total{model,reason}
  Family<Counter>& budget_refusals;       // ticketflow_budget_refusals_total{tier,policy}
  Family<Counter>& tier_outcomes;   // ticketflow_tier_outcomes_total{tier,outcome}: answered, degraded, escalated, ...
  Family<Gauge>& budget_remaining;  // ticketflow_budget_remaining_micro_usd{scope,name,period}
  // The escalation verifier (classify/escalation_model.hpp): decision kept|escalated|share_kept.
  Family<Counter>& verifier_decisions;    // ticketflow_verifier_decisions_total{tier,decision}
  Family<Histogram>& verifier_agreement;  // ticketflow_verifier_agreement{tier}
  Family<Gauge>& escalation_threshold;    // ticketflow_escalation_share_threshold{tier}
  // Shadow evaluation (tier/shadow_role.hpp): field category|needs_human|both, result agree|disagree.
  Family<Counter>& shadow_comparisons;  // ticketflow_shadow_comparisons_total{tier,category,field,result}
  Family<Counter>& shadow_skipped;      // ticketflow_shadow_skipped_total{reason}
  Family<Gauge>& shadow_agreement;      // ticketflow_shadow_agreement{tier,category,field,bound}: estimate|lower|upper
  Family<Gauge>& route_share;           // ticketflow_route_share{tier,kind}: last window's share | target
  Family<Gauge>& route_threshold;       // ticketflow_route_threshold{threshold,category}: in force ("*": all others)
  Family<Counter>& route_adjustments;   // ticketflow_route_adjustments_total
  Family<Counter>& feedback;            // ticketflow_feedback_total{result}
  // ticketflow_carried_cost_dropped_micro_usd_total{tier}: earlier attempts' spend forgotten
  // because the role's bounded memory of it was full (the result then under-reports its cost).
  Family<Counter>& carried_cost_dropped;

  // Result writers.
  Family<Counter>& updates_written;       // ticketflow_updates_written_total{sink}
  Family<Counter>& updates_duplicate;     // ticketflow_updates_duplicate_total{sink}: redelivered, not written again
  Family<Counter>& sink_errors;           // ticketflow_sink_errors_total{sink,retriable}
  Family<Histogram>& end_to_end_seconds;  // ticketflow_ticket_end_to_end_seconds: intake receipt to update
};

}  // namespace ticketflow::observability
