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
// In-flight coalescing (cache.coalesce_wait_ms > 0): a cache miss whose near-duplicate is still
// being answered (redis::InFlightRegistry) waits for that answer instead of going to a tier: it is
// looked up again on a timer (250 ms, doubling to 1 s) and served from the cache as `coalesced`
// once the answer is there; when the other ticket ends without a reusable answer, or the wait
// runs out, it is routed as usual. A ticket routed to a tier is registered as in flight.
//
// Threading: the handler runs on the stage's worker threads; classification is microseconds and
// a cache lookup one Redis round trip, so it answers synchronously. A waiting ticket holds no
// thread: its look-ups run on a small pool of the role's own.

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/classify/routing.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/in_flight.hpp"
#include "ticketflow/redis/route_shares.hpp"
#include "ticketflow/redis/semantic_cache.hpp"
#include "ticketflow/stage/stage.hpp"
#include "ticketflow/stage/timer.hpp"

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
  // `thresholds(category)`: the difficulty thresholds in force (routing.targets); null: the configured ones.
  Decision decide(const Ticket& ticket, const std::function<bool(const std::string& tier)>& over_budget = {},
                  const std::function<classify::Thresholds(const std::string& category)>& thresholds = {}) const;

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
             observability::Logger* logger = nullptr, redis::BudgetLedger* ledger = nullptr,
             redis::InFlightRegistry* in_flight = nullptr, redis::RouteShareLoop* route_shares = nullptr);
  ~IntakeRole();
  IntakeRole(const IntakeRole&) = delete;
  IntakeRole& operator=(const IntakeRole&) = delete;
  stage::Handler handler();

 private:
  struct Waiting;
  void handle(const stage::Delivery& delivery, const stage::Completion& completion);
  bool overBudget(const std::string& tenant, const std::string& tier);
  // A hit with a readable answer goes to the results topic; false otherwise.
  bool serveFromCache(const RoutedTicket& routed, const std::vector<kafka::Header>& trace,
                      const stage::Completion& completion, bool coalesced, bool* skipped);
  void route(RoutedTicket routed, const TicketTriager::Decision& decision, const std::vector<kafka::Header>& trace,
             const stage::Completion& completion);
  void waitAgain(std::shared_ptr<Waiting> waiting);
  void recheck(const std::shared_ptr<Waiting>& waiting);

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
  redis::InFlightRegistry* in_flight_;
  redis::RouteShareLoop* route_shares_;  // routing.targets: the thresholds in force
  WorkerPool rechecks_{4, "tf-coalesce"};
  stage::TimerQueue timers_;  // last: stopped first, so no recheck starts while the rest goes
};

// The result intake produces for a cache hit.
TicketResult cacheHitResult(const RoutedTicket& routed, const redis::CacheHit& hit, CachedAnswer cached,
                            const Clock& clock);

}  // namespace ticketflow::intake
