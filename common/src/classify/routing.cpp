#include "ticketflow/classify/routing.hpp"

#include <algorithm>
#include <cstdio>

namespace ticketflow::classify {

const char* routeActionName(RouteAction a) {
  switch (a) {
    case RouteAction::kModel: return "model";
    case RouteAction::kDefer: return "defer";
    case RouteAction::kHuman: return "human";
  }
  return "model";
}

RoutingPolicy::RoutingPolicy(const Config& config) : routing_(config.routing), on_exhausted_(config.budgets.on_exhausted) {
  for (const auto& t : config.tiers) tiers_.push_back(t.name);
}

int RoutingPolicy::indexOf(const std::string& tier) const {
  const auto it = std::find(tiers_.begin(), tiers_.end(), tier);
  return it == tiers_.end() ? -1 : static_cast<int>(it - tiers_.begin());
}

RouteDecision RoutingPolicy::route(const RouteInput& in) const {
  RouteDecision d;
  const std::string& base = in.difficulty == Difficulty::kEasy     ? routing_.easy_tier
                            : in.difficulty == Difficulty::kMedium ? routing_.medium_tier
                                                                   : routing_.hard_tier;
  d.tier = base;
  d.rule = "difficulty";
  d.trace.push_back(std::string("difficulty: ") + difficultyName(in.difficulty) + " -> " + base);
  const int top = static_cast<int>(tiers_.size()) - 1;

  if (in.confidence < routing_.low_confidence_below) {
    const int i = indexOf(d.tier);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.3f < %.3f", in.confidence, routing_.low_confidence_below);
    if (i >= 0 && i < top) {
      d.tier = tiers_[static_cast<std::size_t>(i + 1)];
      d.rule = "low_confidence";
      d.trace.push_back(std::string("low_confidence: confidence ") + buf + " -> one tier up to " + d.tier);
    } else {
      d.trace.push_back(std::string("low_confidence: confidence ") + buf + ", already the top tier");
    }
  }

  if (const auto it = routing_.min_tier_by_category.find(in.category); it != routing_.min_tier_by_category.end()) {
    if (indexOf(d.tier) < indexOf(it->second)) {
      d.tier = it->second;
      d.rule = "category_minimum";
      d.trace.push_back("category_minimum: " + in.category + " needs at least " + it->second);
    }
  }

  if (const auto it = routing_.tenant_tiers.find(in.tenant); !in.tenant.empty() && it != routing_.tenant_tiers.end()) {
    d.tier = it->second;
    d.rule = "tenant_pin";
    d.trace.push_back("tenant_pin: tenant " + in.tenant + " is pinned to " + it->second);
  }

  if (in.budget.over_budget) {
    const int i = indexOf(d.tier);
    if (on_exhausted_ == BudgetPolicy::kDowngrade && i > 0) {
      d.tier = tiers_[static_cast<std::size_t>(i - 1)];
      d.rule = "budget_downgrade";
      d.trace.push_back("budget_downgrade: over budget -> one tier down to " + d.tier);
    } else if (on_exhausted_ == BudgetPolicy::kHuman) {
      d.action = RouteAction::kHuman;
      d.rule = "budget_human";
      d.trace.push_back("budget_human: over budget -> needs a human, no model call");
    } else {
      // defer, or downgrade with nothing cheaper left: wait for budget on the same tier.
      d.action = RouteAction::kDefer;
      d.rule = "budget_defer";
      d.trace.push_back("budget_defer: over budget -> deferred on " + d.tier);
    }
  }
  return d;
}

}  // namespace ticketflow::classify
