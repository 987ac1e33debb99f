#pragma once
// The intake role: the first stage every ticket passes. Per message: validate against
// schemas/ticket.schema.json (malformed or invalid: dead-lettered at once, with the reason),
// classify (category, confidence, difficulty), look the ticket up in the tenant's semantic
// cache (a hit goes straight to the results topic: cost 0, the original call's cost recorded as
// saved), else route it (routing policy, with the budget state of the chosen tier) to its tier's
// topic. The budget state is read from the ledger at most once a second per (tenant, tier): a
// routing hint (a cap without room downgrades, hands to humans, or marks the ticket deferred);
// the tier's reservation stays the check that holds under concurrency.
//
// Threading: the handler runs on the stage's worker threads; classification is microseconds and
// a cache lookup one Redis round trip, so it answers synchronously.

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/classify/routing.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/semantic_cache.hpp"
#include "ticketflow/stage/stage.hpp"

namespace ticketflow::intake {

// Category, difficulty and tier for one ticket, without Kafka or Redis: what intake decides, and
// what `ticketflow triage --dry-run` prices. Immutable; safe from any thread.
class TicketTriager {
 public:
  TicketTriager(const Config& config, const classify::CategoryModel& model);

  struct Decision {
    Classification classification;
    classify::RouteDecision route;
  };
  // `over_budget`: whether the tier the rules choose should be treated as out of budget; called
  // at most once, with that tier. Null: budgets are not considered.
  Decision decide(const Ticket& ticket, const std::function<bool(const std::string& tier)>& over_budget = {}) const;

 private:
  const classify::CategoryModel& model_;
  classify::DifficultyScorer difficulty_;
  classify::RoutingPolicy routing_;
};

class IntakeRole {
 public:
  // `cache` and `metrics` may be null (no cache: every ticket is routed, cache status skipped).
  IntakeRole(const Config& config, const classify::CategoryModel& model, redis::SemanticCache* cache,
             observability::PipelineMetrics* metrics = nullptr, const Clock& clock = SystemClock::instance(),
             observability::Logger* logger = nullptr, redis::BudgetLedger* ledger = nullptr);
  stage::Handler handler();

 private:
  void handle(const stage::Delivery& delivery, const stage::Completion& completion);
  bool overBudget(const std::string& tenant, const std::string& tier);

  const Config& config_;
  TicketTriager triager_;
  redis::SemanticCache* cache_;
  observability::PipelineMetrics* metrics_;
  const Clock& clock_;
  observability::Logger* logger_;
  redis::BudgetLedger* ledger_;
  struct BudgetSeen {
    bool over = false;
    std::chrono::steady_clock::time_point at{};
  };
  std::mutex budget_mutex_;
  std::map<std::pair<std::string, std::string>, BudgetSeen> budget_seen_;  // (tenant, tier)
};

// The result intake produces for a cache hit.
TicketResult cacheHitResult(const RoutedTicket& routed, const redis::CacheHit& hit, CachedAnswer cached,
                            const Clock& clock);

}  // namespace ticketflow::intake
