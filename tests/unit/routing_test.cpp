#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "ticketflow/classify/routing.hpp"
#include "ticketflow/config/config.hpp"

namespace ticketflow::classify {
namespace {

std::optional<std::string> noEnv(const std::string&) { return std::nullopt; }

// The shipped config: tiers fast < balanced < frontier; easy->fast, medium->balanced,
// hard->frontier; low_confidence_below 0.5; Administrative rights at least balanced.
Config baseConfig() { return loadConfig(testing::sourceDir() + "/config/ticketflow.yaml", noEnv); }

RouteInput input(Difficulty d, double confidence = 0.9, std::string category = "Hardware") {
  RouteInput in;
  in.difficulty = d;
  in.confidence = confidence;
  in.category = std::move(category);
  return in;
}

TEST(Routing, DifficultyPicksTheConfiguredTier) {
  const RoutingPolicy policy(baseConfig());
  EXPECT_EQ(policy.route(input(Difficulty::kEasy)).tier, "fast");
  EXPECT_EQ(policy.route(input(Difficulty::kMedium)).tier, "balanced");
  const auto hard = policy.route(input(Difficulty::kHard));
  EXPECT_EQ(hard.tier, "frontier");
  EXPECT_EQ(hard.rule, "difficulty");
  EXPECT_EQ(hard.action, RouteAction::kModel);
}

TEST(Routing, LowConfidenceMovesOneTierUp) {
  const RoutingPolicy policy(baseConfig());
  const auto d = policy.route(input(Difficulty::kEasy, 0.40));
  EXPECT_EQ(d.tier, "balanced");
  EXPECT_EQ(d.rule, "low_confidence");
  EXPECT_EQ(policy.route(input(Difficulty::kEasy, 0.50)).tier, "fast");  // the bound is exclusive
}

TEST(Routing, LowConfidenceAtTheTopTierStaysThere) {
  const RoutingPolicy policy(baseConfig());
  const auto d = policy.route(input(Difficulty::kHard, 0.1));
  EXPECT_EQ(d.tier, "frontier");
  EXPECT_EQ(d.rule, "difficulty");
  ASSERT_EQ(d.trace.size(), 2u);
  EXPECT_NE(d.trace[1].find("already the top tier"), std::string::npos);
}

TEST(Routing, CategoryMinimumRaisesButNeverLowers) {
  const RoutingPolicy policy(baseConfig());
  const auto raised = policy.route(input(Difficulty::kEasy, 0.9, "Administrative rights"));
  EXPECT_EQ(raised.tier, "balanced");
  EXPECT_EQ(raised.rule, "category_minimum");
  const auto kept = policy.route(input(Difficulty::kHard, 0.9, "Administrative rights"));
  EXPECT_EQ(kept.tier, "frontier");
  EXPECT_EQ(kept.rule, "difficulty");
}

TEST(Routing, TenantPinOverridesEverythingBeforeIt) {
  Config c = baseConfig();
  c.routing.tenant_tiers["acme"] = "fast";
  const RoutingPolicy policy(c);
  auto in = input(Difficulty::kHard, 0.2, "Administrative rights");
  in.tenant = "acme";
  const auto d = policy.route(in);
  EXPECT_EQ(d.tier, "fast");
  EXPECT_EQ(d.rule, "tenant_pin");
  in.tenant = "globex";
  EXPECT_EQ(policy.route(in).tier, "frontier");
}

TEST(Routing, OverBudgetDowngradesOneTier) {
  Config c = baseConfig();
  c.budgets.on_exhausted = BudgetPolicy::kDowngrade;
  const RoutingPolicy policy(c);
  auto in = input(Difficulty::kHard);
  in.budget.over_budget = true;
  const auto d = policy.route(in);
  EXPECT_EQ(d.tier, "balanced");
  EXPECT_EQ(d.rule, "budget_downgrade");
  EXPECT_EQ(d.action, RouteAction::kModel);
}

TEST(Routing, OverBudgetOnTheCheapestTierDefers) {
  Config c = baseConfig();
  c.budgets.on_exhausted = BudgetPolicy::kDowngrade;
  const RoutingPolicy policy(c);
  auto in = input(Difficulty::kEasy);
  in.budget.over_budget = true;
  const auto d = policy.route(in);
  EXPECT_EQ(d.tier, "fast");
  EXPECT_EQ(d.rule, "budget_defer");
  EXPECT_EQ(d.action, RouteAction::kDefer);
}

TEST(Routing, OverBudgetDeferAndHumanPolicies) {
  Config c = baseConfig();
  c.budgets.on_exhausted = BudgetPolicy::kDefer;
  auto in = input(Difficulty::kMedium);
  in.budget.over_budget = true;
  const auto deferred = RoutingPolicy(c).route(in);
  EXPECT_EQ(deferred.action, RouteAction::kDefer);
  EXPECT_EQ(deferred.tier, "balanced");
  EXPECT_EQ(deferred.rule, "budget_defer");
  c.budgets.on_exhausted = BudgetPolicy::kHuman;
  const auto human = RoutingPolicy(c).route(in);
  EXPECT_EQ(human.action, RouteAction::kHuman);
  EXPECT_EQ(human.rule, "budget_human");
  EXPECT_STREQ(routeActionName(human.action), "human");
}

TEST(Routing, BudgetAppliesAfterATenantPin) {
  Config c = baseConfig();
  c.routing.tenant_tiers["acme"] = "frontier";
  const RoutingPolicy policy(c);
  auto in = input(Difficulty::kEasy);
  in.tenant = "acme";
  in.budget.over_budget = true;
  const auto d = policy.route(in);
  EXPECT_EQ(d.tier, "balanced");
  EXPECT_EQ(d.rule, "budget_downgrade");
  EXPECT_EQ(d.trace.size(), 3u);
}

}  // namespace
}  // namespace ticketflow::classify
