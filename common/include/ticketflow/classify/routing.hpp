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

}  // namespace ticketflow::classify
