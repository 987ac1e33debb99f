#pragma once
// Shadow evaluation's role: consumes kafka.topics.shadow (tickets a tier below the reference tier
// answered, sampled by shadow.sample), asks the reference tier's models the same ticket, and
// compares the fields a helpdesk acts on: the answer's category and needs_human. The counts go to the AgreementStore
// (once per ticket, revision and tier, whatever the redeliveries), and each comparison becomes a
// training example for the escalation verifier. Nothing reaches a sink and the ticket's own answer
// never waits for this: it went out with the tier's answer.
//
// The reference calls are charged to the tier bucket "shadow" (a tier-scoped cap may name it) as
// well as the tenant and global buckets; a cap without room skips the comparison (counted in
// ticketflow_shadow_skipped_total{reason="budget"}), it never defers or downgrades. Redis or every
// reference model down: the message is held like any other (nothing is lost, nothing asked twice:
// the ledger replays a paid reply). A reply the reference could not make usable, or a fallback
// model's answer, is no comparison: skipped and counted.
//
// Threading: the stage's handler hands each request to a pool of `threads` (reference calls take
// seconds); stop() after the stage stopped.

#include <chrono>
#include <memory>
#include <mutex>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/stage/stage.hpp"
#include "tier_service.hpp"

namespace ticketflow::tier {

// `config` with the tier "shadow" added: the reference tier's models and settings, which
// TierService needs in its configuration to charge shadow calls to their own bucket.
Config withShadowTier(const Config& config);

// shadow.quality_floor as TierPolicy::below_quality_floor needs it: a tier x category is below the
// floor when the 95% upper bound of its measured agreement (category and needs_human both) is,
// over at least shadow.min_comparisons comparisons. The table is read from Redis at most every
// `refresh` (a stale table, or none while Redis is away, is kept: the gate never blocks a ticket).
class QualityFloor {
 public:
  QualityFloor(const ShadowConfig& shadow, redis::AgreementStore& store, const Clock& clock = SystemClock::instance(),
               std::chrono::milliseconds refresh = std::chrono::seconds(5));
  bool below(const std::string& tier, const std::string& category);

 private:
  const ShadowConfig& shadow_;
  redis::AgreementStore& store_;
  const Clock& clock_;
  const std::chrono::milliseconds refresh_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point read_at_{};
  bool read_ = false;
  bool reading_ = false;  // a thread is reading the table from Redis
  redis::AgreementTable table_;
};

class ShadowRole {
 public:
  // `service`: a TierService for tier "shadow" built on withShadowTier(config). `metrics` and
  // `logger` may be null.
  ShadowRole(const Config& config, TierService& service, redis::AgreementStore& store, int threads,
             observability::PipelineMetrics* metrics = nullptr, observability::Logger* logger = nullptr);
  stage::Handler handler();
  void stop() { pool_.stop(); }

 private:
  void compare(const ShadowRequest& request, int attempt, const stage::Completion& completion);

  const Config& config_;
  TierService& service_;
  redis::AgreementStore& store_;
  observability::PipelineMetrics* metrics_;
  observability::Logger* logger_;
  WorkerPool pool_;
};

}  // namespace ticketflow::tier
