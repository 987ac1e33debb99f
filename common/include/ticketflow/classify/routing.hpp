#pragma once
// Routing policy: (category, difficulty, confidence, tenant, budget state) -> tier, from the
// `routing` and `budgets` config sections. Rules run in a fixed order and each may change the
// tier; the decision names the last rule that changed it (or "difficulty" when none did) and
// keeps the trace of every rule that applied, for `ticketflow classify --explain`.
//
// Rule order:
//   1. difficulty        routing.difficulty_tiers[easy|medium|hard]
//   2. low_confidence    confidence < routing.low_confidence_below -> one tier up
//   3. category_minimum  routing.min_tier_by_category[category] raises the tier to at least that
//   4. tenant_pin        routing.tenant_tiers[tenant] replaces the tier outright
//   5. budget_*          over budget: budgets.on_exhausted = downgrade -> one tier down
//                        (budget_downgrade; already the cheapest: budget_defer instead),
//                        defer -> action kDefer (budget_defer), human -> action kHuman
//                        (budget_human)
//
// Threading: immutable after construction; route() is safe from any thread.
// Errors: none at run time; tier names were cross-checked by the config loader.

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/config/config.hpp"

namespace ticketflow::classify {

struct BudgetState {
  bool over_budget = false;  // a cap for this tenant/tier has no room for the call
};

struct RouteInput {
  std::string category;
  Difficulty difficulty = Difficulty::kMedium;
  double confidence = 1.0;
  std::string tenant;
  BudgetState budget;
};

enum class RouteAction { kModel, kDefer, kHuman };
const char* routeActionName(RouteAction a);  // "model", "defer", "human"

struct RouteDecision {
  std::string tier;
  RouteAction action = RouteAction::kModel;
  std::string rule;                // the rule that decided
  std::vector<std::string> trace;  // "difficulty: medium -> balanced", one line per rule applied
};

class RoutingPolicy {
 public:
  explicit RoutingPolicy(const Config& config);
  RouteDecision route(const RouteInput& input) const;

 private:
  int indexOf(const std::string& tier) const;

  std::vector<std::string> tiers_;  // cheapest first
  RoutingConfig routing_;
  BudgetPolicy on_exhausted_;
};

// The difficulty thresholds in force when routing.targets holds the tier shares: they start from
// classifier.difficulty and move after every window of final answers (adjustForShares). The hard
// threshold is one for all; the easy one too, but for a category the easy tier is closed to
// (shadow evaluation measured it below the quality floor there): it keeps its own, unmoved, since
// moving it would only send tickets that go straight up again.
struct RouteThresholds {
  double easy_below = 0.35;
  double hard_from = 0.65;
  std::map<std::string, double> easy_below_by_category;  // the closed categories'
  std::int64_t version = 0;  // of the shared copy (redis/route_shares.hpp); 0: never adjusted

  static RouteThresholds configured(const DifficultyConfig& difficulty);
  Thresholds forCategory(const std::string& category) const;
};

// Final answers per tier in one window of routing.targets.window answers.
struct ShareWindow {
  std::map<std::string, std::int64_t> answered_by_tier;
  std::set<std::string> categories;
  std::int64_t total() const;
  double shareOf(const std::string& tier) const;
};

// The thresholds after one window: the easy one moves by gain x (target - share) of the easy tier,
// the hard one by gain x (share - target) of the hard tier (more answered there than wanted: fewer
// tickets called hard), each only when its error is above half of routing.targets.tolerance;
// always 0 <= easy_below <= hard_from <= 1. `easy_tier_closed(category)`: whether that category
// no longer reaches the easy tier (it keeps its own easy threshold while so).
RouteThresholds adjustForShares(const RouteThresholds& current, const RoutingConfig& routing, const ShareWindow& window,
                                const std::function<bool(const std::string& category)>& easy_tier_closed);

}  // namespace ticketflow::classify
