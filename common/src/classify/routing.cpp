#include "ticketflow/classify/routing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ticketflow::classify {

const char* routeActionName(RouteAction a) {
  switch (a) {
    case RouteAction::kModel:
      return "model";
    case RouteAction::kDefer:
      return "defer";
    case RouteAction::kHuman:
      return "human";
  }
  return "model";
}

RoutingPolicy::RoutingPolicy(const Config& config)
    : routing_(config.routing), on_exhausted_(config.budgets.on_exhausted) {
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

RouteThresholds RouteThresholds::configured(const DifficultyConfig& difficulty) {
  RouteThresholds t;
  t.easy_below = difficulty.easy_below;
  t.hard_from = difficulty.hard_from;
  return t;
}

Thresholds RouteThresholds::forCategory(const std::string& category) const {
  const auto it = easy_below_by_category.find(category);
  return {std::min(it == easy_below_by_category.end() ? easy_below : it->second, hard_from), hard_from};
}

std::int64_t ShareWindow::total() const {
  std::int64_t n = 0;
  for (const auto& [tier, count] : answered_by_tier) n += count;
  return n;
}

double ShareWindow::shareOf(const std::string& tier) const {
  const auto n = total();
  const auto it = answered_by_tier.find(tier);
  return n == 0 || it == answered_by_tier.end() ? 0.0 : static_cast<double>(it->second) / static_cast<double>(n);
}

RouteThresholds adjustForShares(const RouteThresholds& current, const RoutingConfig& routing, const ShareWindow& window,
                                const std::function<bool(const std::string&)>& easy_tier_closed) {
  RouteThresholds next = current;
  const auto& targets = routing.targets;
  if (!targets.enabled() || window.total() == 0) return next;
  const double dead_band = targets.tolerance / 2;
  const double easy_error = targets.shareOf(routing.easy_tier) - window.shareOf(routing.easy_tier);
  const double hard_error = window.shareOf(routing.hard_tier) - targets.shareOf(routing.hard_tier);
  // A closed category keeps the easy threshold it had; one open again rejoins the common one.
  for (const auto& category : window.categories) {
    const bool closed = easy_tier_closed && easy_tier_closed(category);
    if (closed && !next.easy_below_by_category.count(category))
      next.easy_below_by_category[category] = current.easy_below;
    else if (!closed)
      next.easy_below_by_category.erase(category);
  }
  if (std::abs(hard_error) > dead_band)
    next.hard_from = std::clamp(next.hard_from + targets.gain * hard_error, 0.0, 1.0);
  if (std::abs(easy_error) > dead_band) next.easy_below += targets.gain * easy_error;
  next.easy_below = std::clamp(next.easy_below, 0.0, next.hard_from);
  for (auto& [category, easy] : next.easy_below_by_category) easy = std::min(easy, next.hard_from);
  return next;
}

}  // namespace ticketflow::classify
