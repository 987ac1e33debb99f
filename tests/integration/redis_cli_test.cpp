#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/services.hpp"
#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/redis/feedback_store.hpp"

namespace ticketflow {
namespace {

using testing::binaryPath;
using testing::runCommand;

class RedisCli : public testing::RedisTest {
 protected:
  void SetUp() override {
    dir_ = testing::makeTempDir("redis-cli");
    config_ = dir_ + "/ticketflow.yaml";
    std::string text = testing::readFile(testing::sourceDir() + "/tests/data/configs/minimal.yaml");
    const std::string from = "url: redis://127.0.0.1:6379/0";
    text.replace(text.find(from), from.size(), "url: " + server().url() + "\n  key_prefix: \"" + key_prefix_ + "\"");
    text += "budgets:\n  caps:\n    - {scope: tenant, tenant: acme, daily_usd: 5.00}\n";
    text += "classifier: {category_model: " + testing::sourceDir() + "/config/models/category.tfmodel}\n";
    testing::writeFile(config_, text);
  }
  testing::CommandOutput run(const std::string& args) const {
    return runCommand(binaryPath() + " " + args + " --config " + config_);
  }
  std::string dir_, config_;
};

TEST_F(RedisCli, BudgetSetShowAndResetACap) {
  auto set = run("budget set --scope tier --name fast --period month --usd 12.5");
  ASSERT_EQ(set.exit_code, 0) << set.output;
  auto show = run("budget show 2>&1");
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("$12.500000"), std::string::npos) << show.output;
  // The tests' redis-server keeps no append-only file: an operator is told what that costs.
  EXPECT_NE(show.output.find("warning: the ledger's Redis keeps no append-only file"), std::string::npos)
      << show.output;
  EXPECT_NE(show.output.find("acme"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("$5.000000"), std::string::npos) << show.output;
  auto reset = run("budget reset --scope tier --name fast --period month --cap");
  ASSERT_EQ(reset.exit_code, 0) << reset.output;
  EXPECT_EQ(run("budget show").output.find("$12.500000"), std::string::npos);
  auto spend = run("budget reset --period day");
  EXPECT_EQ(spend.exit_code, 0) << spend.output;
  auto bad = run("budget set --scope galaxy --period day --usd 1");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

TEST_F(RedisCli, CacheStatsPurgeAndEval) {
  auto stats = run("cache stats");
  ASSERT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_NE(stats.output.find("total entries: 0"), std::string::npos) << stats.output;
  EXPECT_EQ(run("cache purge").exit_code, 2);
  auto purge = run("cache purge --tenant acme --older-than 60");
  EXPECT_EQ(purge.exit_code, 0) << purge.output;
  EXPECT_NE(purge.output.find("purged 0"), std::string::npos) << purge.output;

  const std::string data = dir_ + "/stream.jsonl";
  testing::writeFile(data, R"({"text": "cannot log in to vpn from home password expired", "category": "Access"})"
                           "\n"
                           R"({"text": "printer on floor three is jammed again", "category": "Hardware"})"
                           "\n"
                           R"({"text": "cannot log in to vpn from home, password expired!", "category": "Access"})"
                           "\n"
                           R"({"text": "please order a new laptop dock for the finance team", "category": "Purchase"})"
                           "\n");
  auto eval = run("cache eval --data " + data + " --thresholds 0.5,0.99");
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  // The third ticket is an exact repeat of the first after normalisation: 1 hit of 4 at 0.99.
  EXPECT_NE(eval.output.find("same predicted category only"), std::string::npos) << eval.output;
  EXPECT_NE(eval.output.find("     0.99       1    25.00%     100.00%"), std::string::npos) << eval.output;
  EXPECT_NE(
      eval.output.find("as the cache runs (a hit is served, not stored again), at the configured 0.93: 1 hits, 25.00%"),
      std::string::npos)
      << eval.output;
  // At threshold 0, every ticket's nearest earlier one counts when any category may match; kept to
  // its own predicted category (as the configured cache does), only the repeat finds one.
  auto same = run("cache eval --data " + data + " --thresholds 0 --in-memory");
  auto any = run("cache eval --data " + data + " --thresholds 0 --in-memory --any-category");
  ASSERT_EQ(same.exit_code, 0) << same.output;
  ASSERT_EQ(any.exit_code, 0) << any.output;
  EXPECT_NE(same.output.find("     0.00       1    25.00%"), std::string::npos) << same.output;
  EXPECT_NE(any.output.find("     0.00       2    50.00%"), std::string::npos) << any.output;
}

// Shadow evaluation's figures and labels, as an operator reads and uses them.
TEST_F(RedisCli, EvalRoutingPrintsAgreementAndTrainEscalationLearnsFromItsLabels) {
  redis::RedisPoolOptions options;
  options.endpoint.port = server().port();
  redis::AgreementStore store(std::make_shared<redis::RedisPool>(options), key_prefix_);
  for (int i = 0; i < 60; ++i) {
    redis::ShadowComparison c;
    c.tenant = "acme";
    c.ticket_id = "T-" + std::to_string(i);
    c.revision = 1;
    c.category_agrees = i % 3 != 0;
    c.needs_human_agrees = true;
    c.label.tier = "balanced";  // the minimal configuration's one tier, fast, is the reference
    c.label.category = "Access";
    c.label.features.category_agrees = c.category_agrees;
    c.label.features.stated_confidence = 0.5 + (i % 5) / 10.0;
    c.label.features.classifier_confidence = 0.8;
    c.label.agreed = c.category_agrees;
    ASSERT_TRUE(store.record(c).ok());
    ASSERT_TRUE(store.countAnswered("balanced", "Access").ok());
  }
  const std::string labels = dir_ + "/labels.jsonl";
  auto eval = run("eval routing --export-labels " + labels);
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("wrote 60 shadow labels"), std::string::npos) << eval.output;
  EXPECT_NE(eval.output.find("66.7% [54.1%, 77.3%]"), std::string::npos) << eval.output;  // 40 of 60, Wilson

  const std::string model = dir_ + "/escalation.json";
  auto train =
      runCommand(binaryPath() + " train escalation --labels " + labels + " --out " + model + " --min-tier-examples 50");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("AUC verifier 1.000"), std::string::npos) << train.output;
  auto loaded = classify::EscalationModel::load(model);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->examplesFor("balanced"), 60);
  classify::AnswerFeatures agrees, contradicts;
  agrees.category_agrees = true;
  agrees.classifier_confidence = contradicts.classifier_confidence = 0.8;
  EXPECT_GT(loaded->agreement("balanced", agrees), 0.9);
  EXPECT_LT(loaded->agreement("balanced", contradicts), 0.1);

  // The helpdesk's verdicts join the shadow labels.
  redis::FeedbackStore feedback(std::make_shared<redis::RedisPool>(options), key_prefix_, std::chrono::hours(1));
  for (int i = 0; i < 2; ++i) {
    Feedback f;
    f.tenant = "acme";
    f.ticket_id = "FB-" + std::to_string(i);
    f.reopened = true;
    redis::AnswerRecord answer;
    answer.tier = "balanced";
    answer.category = answer.answer_category = "Access";
    auto recorded = feedback.record(f, redis::labelsFrom(f, answer));
    ASSERT_TRUE(recorded.ok() && *recorded);
  }
  auto with_feedback =
      run("train escalation --labels " + labels + " --feedback --out " + model + " --min-tier-examples 50");
  ASSERT_EQ(with_feedback.exit_code, 0) << with_feedback.output;
  EXPECT_NE(with_feedback.output.find("added 2 labels from the helpdesk's feedback"), std::string::npos)
      << with_feedback.output;
  EXPECT_NE(with_feedback.output.find("62 labels"), std::string::npos) << with_feedback.output;

  EXPECT_EQ(runCommand(binaryPath() + " train escalation --labels " + labels).exit_code, 2) << "--out is required";
  testing::writeFile(dir_ + "/bad.jsonl", "{\"tier\": \"fast\"}\n");
  auto bad = runCommand(binaryPath() + " train escalation --labels " + dir_ + "/bad.jsonl --out " + model + " 2>&1");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("bad.jsonl:1:"), std::string::npos) << bad.output;
  testing::writeFile(dir_ + "/long.jsonl", "\n" + std::string(70'000, 'x') + "\n");
  auto long_line =
      runCommand(binaryPath() + " train escalation --labels " + dir_ + "/long.jsonl --out " + model + " 2>&1");
  EXPECT_EQ(long_line.exit_code, 1) << long_line.output.substr(0, 300);
  EXPECT_NE(long_line.output.find("long.jsonl:2: line longer than 65536 bytes"), std::string::npos);
  EXPECT_EQ(long_line.output.find("xxxx"), std::string::npos) << "the rejection quotes no content";

  auto reset = run("eval routing --reset");
  ASSERT_EQ(reset.exit_code, 0) << reset.output;
  EXPECT_NE(run("eval routing").output.find("nothing measured yet"), std::string::npos);
}

TEST(RedisCliDown, AnUnreachableRedisIsOneClearLine) {
  const std::string dir = testing::makeTempDir("redis-cli-down");
  std::string text = testing::readFile(testing::sourceDir() + "/tests/data/configs/minimal.yaml");
  const std::string from = "redis://127.0.0.1:6379/0";
  text.replace(text.find(from), from.size(), "redis://127.0.0.1:1/0");
  testing::writeFile(dir + "/c.yaml", text);
  auto out = runCommand(binaryPath() + " budget show --config " + dir + "/c.yaml");
  EXPECT_EQ(out.exit_code, 1) << out.output;
  EXPECT_NE(out.output.find("not reachable"), std::string::npos) << out.output;
}

}  // namespace
}  // namespace ticketflow
