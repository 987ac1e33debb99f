#include "ticketflow/classify/difficulty.hpp"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures/environment.hpp"

namespace ticketflow::classify {
namespace {

DifficultyConfig defaults() {
  return DifficultyConfig{};
}

TEST(Difficulty, RoutineQuestionIsEasyAndOutageWithErrorsIsHard) {
  const DifficultyScorer scorer(defaults());
  const auto easy = scorer.score("Hi, how do I change my email signature in Outlook? Thanks", "Miscellaneous");
  EXPECT_EQ(easy.level, Difficulty::kEasy) << easy.score;
  const auto hard = scorer.score(
      "URGENT production outage: the payments database cluster is down for all users since 02:00. "
      "Replication failed with ORA-00600 and the failover node shows kernel panic. We also see "
      "suspicious logins on the admin account, possibly compromised. Data may be lost.",
      "Storage");
  EXPECT_EQ(hard.level, Difficulty::kHard) << hard.score;
  EXPECT_GT(hard.score, easy.score);
}

TEST(Difficulty, ScoreIsClampedAndSignalsAreListed) {
  const DifficultyScorer scorer(defaults());
  const auto r = scorer.score("");
  EXPECT_GE(r.score, 0.0);
  EXPECT_LE(r.score, 1.0);
  ASSERT_EQ(r.signals.size(), DifficultyScorer::signalNames().size());
  EXPECT_EQ(r.signals[0].name, "bias");
  for (const auto& s : r.signals) {
    EXPECT_GE(s.value, 0.0) << s.name;
    EXPECT_LE(s.value, 1.0) << s.name;
  }
}

TEST(Difficulty, ConfigWeightsOverrideBuiltInsAndUnknownNamesFail) {
  DifficultyConfig c;
  c.weights["security"] = 0.0;
  c.weights["bias"] = 0.0;
  const DifficultyScorer zeroed(c);
  const DifficultyScorer normal(defaults());
  const std::string text = "I clicked a phishing link and now there is malware on my laptop";
  EXPECT_LT(zeroed.score(text).score, normal.score(text).score);
  for (const auto& s : zeroed.score(text).signals)
    if (s.name == "security") {
      EXPECT_EQ(s.weight, 0.0);
    }
  c.weights["moon_phase"] = 1.0;
  EXPECT_THROW(DifficultyScorer{c}, std::invalid_argument);
}

TEST(Difficulty, ThresholdsFollowConfig) {
  DifficultyConfig c;
  c.easy_below = 0.2;
  c.hard_from = 0.3;
  const DifficultyScorer scorer(c);
  EXPECT_EQ(scorer.levelFor(0.19), Difficulty::kEasy);
  EXPECT_EQ(scorer.levelFor(0.2), Difficulty::kMedium);
  EXPECT_EQ(scorer.levelFor(0.3), Difficulty::kHard);
}

TEST(Difficulty, ThresholdsForSharesHitTheShares) {
  std::vector<double> scores;
  for (int i = 0; i < 1000; ++i) scores.push_back(i / 1000.0);
  auto t = thresholdsForShares(scores, 0.65, 0.25, 0.10);
  ASSERT_TRUE(t.ok());
  std::size_t easy = 0, hard = 0;
  for (double s : scores) {
    if (s < t->easy_below) ++easy;
    if (s >= t->hard_from) ++hard;
  }
  EXPECT_EQ(easy, 650u);
  EXPECT_EQ(hard, 100u);
  EXPECT_FALSE(thresholdsForShares(scores, 0.5, 0.5, 0.5).ok());
  EXPECT_FALSE(thresholdsForShares({}, 0.65, 0.25, 0.10).ok());
}

TEST(Difficulty, RewriteThresholdsKeepsCommentsAndEverythingElse) {
  const std::string yaml =
      "classifier:\n"
      "  category_model: models/category.tfmodel   # relative\n"
      "  # Difficulty thresholds.\n"
      "  difficulty:\n"
      "    easy_below: 0.35   # easy under this\n"
      "    hard_from: 0.65\n"
      "routing:\n"
      "  low_confidence_below: 0.50\n";
  auto out = rewriteDifficultyThresholds(yaml, {0.1234, 0.5678});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out,
            "classifier:\n"
            "  category_model: models/category.tfmodel   # relative\n"
            "  # Difficulty thresholds.\n"
            "  difficulty:\n"
            "    easy_below: 0.1234   # easy under this\n"
            "    hard_from: 0.5678\n"
            "routing:\n"
            "  low_confidence_below: 0.50\n");
  EXPECT_FALSE(rewriteDifficultyThresholds("a: 1\n", {0.1, 0.2}).ok());
}

// Agreement with the hand-labelled tickets in tests/data/difficulty/tickets.jsonl at the
// shipped thresholds (0.35 / 0.65). Measured with the built-in weights: exact level 0.697,
// within one level 0.975, concordance 0.862 (docs/classifier.md). The bars sit a little under
// that, so a change that makes the scorer clearly worse fails here.
constexpr double kAgreementBar = 0.65;
constexpr double kConcordanceBar = 0.82;

TEST(Difficulty, AgreesWithTheHandLabelledSet) {
  std::ifstream in(testing::sourceDir() + "/tests/data/difficulty/tickets.jsonl");
  ASSERT_TRUE(in) << "missing tests/data/difficulty/tickets.jsonl";
  const DifficultyScorer scorer(defaults());
  std::size_t n = 0, exact = 0, adjacent = 0, pairs = 0, ordered = 0;
  std::vector<std::pair<int, double>> labelled;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string label = j.at("difficulty");
    const int truth = label == "easy" ? 0 : label == "medium" ? 1 : 2;
    const auto r = scorer.score(j.at("text").get<std::string>(), j.value("category", ""));
    const int got = static_cast<int>(r.level);
    ++n;
    if (got == truth) ++exact;
    if (std::abs(got - truth) <= 1) ++adjacent;
    labelled.push_back({truth, r.score});
  }
  // Pairwise ordering (a concordance index): for tickets with different labels, how often the
  // harder one scores higher.
  for (std::size_t a = 0; a < labelled.size(); ++a)
    for (std::size_t b = 0; b < labelled.size(); ++b)
      if (labelled[a].first < labelled[b].first) {
        ++pairs;
        if (labelled[a].second < labelled[b].second) ++ordered;
      }
  ASSERT_GE(n, 300u);
  const double agreement = static_cast<double>(exact) / static_cast<double>(n);
  const double concordance = static_cast<double>(ordered) / static_cast<double>(pairs);
  std::printf("difficulty agreement on %zu labelled tickets: exact %.3f, within one level %.3f, concordance %.3f\n", n,
              agreement, static_cast<double>(adjacent) / static_cast<double>(n), concordance);
  EXPECT_GE(agreement, kAgreementBar);
  EXPECT_GE(concordance, kConcordanceBar);
}

}  // namespace
}  // namespace ticketflow::classify
