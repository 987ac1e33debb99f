#include "ticketflow/classify/routing.hpp"

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/config/config.hpp"

namespace ticketflow::classify {
namespace {

std::optional<std::string> noEnv(const std::string&) {
  return std::nullopt;
}

// The shipped config: tiers fast < balanced < frontier; easy->fast, medium->balanced,
// hard->frontier; low_confidence_below 0.5; Administrative rights at least balanced.
Config baseConfig() {
  return loadConfig(testing::sourceDir() + "/config/ticketflow.yaml", noEnv);
}

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

// routing.targets: fast 50%, balanced 35%, frontier 15%, gain 0.5, tolerance 0.02.
RoutingConfig withTargets() {
  RoutingConfig routing = baseConfig().routing;
  routing.targets.shares = {{"fast", 0.50}, {"balanced", 0.35}, {"frontier", 0.15}};
  routing.targets.gain = 0.5;
  routing.targets.tolerance = 0.02;
  return routing;
}

ShareWindow windowOf(std::int64_t fast, std::int64_t balanced, std::int64_t frontier,
                     std::set<std::string> categories = {"Hardware", "Access"}) {
  ShareWindow w;
  w.answered_by_tier = {{"fast", fast}, {"balanced", balanced}, {"frontier", frontier}};
  w.categories = std::move(categories);
  return w;
}

TEST(RouteTargets, TooFewEasyAndTooManyHardAnswersMoveBothThresholdsUp) {
  RouteThresholds start;  // 0.35 / 0.65
  const auto next = adjustForShares(start, withTargets(), windowOf(30, 40, 30), {});
  EXPECT_NEAR(next.easy_below, 0.35 + 0.5 * (0.50 - 0.30), 1e-9) << "more tickets called easy";
  EXPECT_NEAR(next.hard_from, 0.65 + 0.5 * (0.30 - 0.15), 1e-9) << "fewer called hard";
  const auto back = adjustForShares(next, withTargets(), windowOf(70, 25, 5), {});
  EXPECT_LT(back.easy_below, next.easy_below);
  EXPECT_LT(back.hard_from, next.hard_from);
}

TEST(RouteTargets, AWindowWithinHalfTheToleranceMovesNothing) {
  RouteThresholds start;
  const auto next = adjustForShares(start, withTargets(), windowOf(501, 350, 149), {});
  EXPECT_EQ(next.easy_below, start.easy_below);
  EXPECT_EQ(next.hard_from, start.hard_from);
}

TEST(RouteTargets, ACategoryTheEasyTierIsClosedToKeepsItsThresholdUntilItOpensAgain) {
  RouteThresholds start;
  bool hardware_closed = true;
  auto closed = [&](const std::string& c) { return c == "Hardware" && hardware_closed; };
  auto next = adjustForShares(start, withTargets(), windowOf(30, 55, 15), closed);
  EXPECT_GT(next.easy_below, start.easy_below);
  EXPECT_EQ(next.forCategory("Hardware").easy_below, start.easy_below) << "frozen where it stood";
  EXPECT_EQ(next.forCategory("Access").easy_below, next.easy_below);
  next = adjustForShares(next, withTargets(), windowOf(40, 45, 15), closed);
  EXPECT_EQ(next.forCategory("Hardware").easy_below, start.easy_below);
  hardware_closed = false;
  next = adjustForShares(next, withTargets(), windowOf(50, 35, 15), closed);
  EXPECT_EQ(next.forCategory("Hardware").easy_below, next.easy_below) << "open again: it rejoins the common threshold";
}

TEST(RouteTargets, ThresholdsStayOrderedWithinZeroAndOne) {
  const auto routing = withTargets();
  RouteThresholds start;
  auto next = start;
  for (int i = 0; i < 50; ++i) next = adjustForShares(next, routing, windowOf(0, 0, 100), {});
  EXPECT_LE(next.hard_from, 1.0);
  EXPECT_LE(next.easy_below, next.hard_from);
  EXPECT_GE(next.easy_below, 0.0);
  for (int i = 0; i < 50; ++i) next = adjustForShares(next, routing, windowOf(0, 100, 0), {});
  EXPECT_LE(next.easy_below, next.hard_from);
  EXPECT_GE(next.hard_from, 0.0);
}

// The loop closed on a population: difficulty scores spread over [0, 1] (more easy ones than hard),
// 30% Hardware, which the easy tier is closed to (its easy tickets are answered a tier up). From
// the configured thresholds, a few windows bring each tier within the tolerance of its target.
TEST(RouteTargets, TheLoopReachesTheTargetsOnAPopulationWithAClosedCategory) {
  const auto routing = withTargets();
  auto closed = [](const std::string& c) { return c == "Hardware"; };
  RouteThresholds thresholds;
  ShareWindow last;
  for (int round = 0; round < 40; ++round) {
    std::map<std::string, std::int64_t> answered;
    for (int i = 0; i < 1000; ++i) {
      const double u = (i + 0.5) / 1000.0;
      const double score = u * u;  // skewed to easy, as helpdesk tickets are
      const std::string category = i % 10 < 3 ? "Hardware" : "Access";
      auto level = levelFor(score, thresholds.forCategory(category));
      if (level == Difficulty::kEasy && closed(category)) level = Difficulty::kMedium;
      ++answered[level == Difficulty::kEasy ? "fast" : level == Difficulty::kHard ? "frontier" : "balanced"];
    }
    last = windowOf(answered["fast"], answered["balanced"], answered["frontier"]);
    thresholds = adjustForShares(thresholds, routing, last, closed);
  }
  EXPECT_NEAR(last.shareOf("fast"), 0.50, 0.02);
  EXPECT_NEAR(last.shareOf("balanced"), 0.35, 0.02);
  EXPECT_NEAR(last.shareOf("frontier"), 0.15, 0.02);
  EXPECT_GT(thresholds.forCategory("Access").easy_below, thresholds.forCategory("Hardware").easy_below)
      << "the open categories carry the easy tier's share";
}

}  // namespace
}  // namespace ticketflow::classify
