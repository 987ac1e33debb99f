#include <filesystem>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "ticketflow/classify/category_model.hpp"

namespace ticketflow {
namespace {

using testing::binaryPath;
using testing::runCommand;
using testing::sourceDir;

const std::string kShippedModel = "/config/models/category.tfmodel";

double figure(const std::string& output, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex(name + " ([0-9.]+)"))) return -1;
  return std::stod(m[1]);
}

// The "done when": the shipped model on the dev split reaches accuracy >= 0.875 and
// macro-F1 >= 0.87, measured through `ticketflow eval` as the README reports it.
TEST(ShippedCategoryModel, MeetsTheAccuracyTargetsOnTheDevSplit) {
  const std::string data = testing::itTicketsDir();
  if (data.empty())
    GTEST_SKIP() << "../shared/data/it-tickets/dev.jsonl is absent; the dev-split targets cannot be checked";
  const auto out =
      runCommand(binaryPath() + " eval --data " + data + "/dev.jsonl --model " + sourceDir() + kShippedModel);
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("4785 texts"), std::string::npos) << out.output;
  EXPECT_GE(figure(out.output, "accuracy"), 0.875) << out.output;
  EXPECT_GE(figure(out.output, "macro-F1"), 0.87) << out.output;
  EXPECT_NE(out.output.find("confusion matrix"), std::string::npos);
}

TEST(ShippedCategoryModel, LoadsAndIsSmall) {
  auto model = classify::CategoryModel::load(sourceDir() + kShippedModel);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ(model->labels().size(), 8u);
  EXPECT_LE(std::filesystem::file_size(sourceDir() + kShippedModel), 8u * 1024 * 1024);
  EXPECT_EQ(model->predict("new laptop docking station monitor not working").category, "Hardware");
  EXPECT_EQ(model->predict("please reset my password account locked").category, "Access");
}

std::string toyCsv() {
  std::string csv = "body,team\n";
  const char* hw[] = {"laptop screen cracked", "keyboard keys stuck", "monitor flickers", "docking station dead"};
  const char* ac[] = {"password reset needed", "account locked out", "need access to folder", "mfa token lost"};
  for (int i = 0; i < 60; ++i) {
    csv += std::string("\"") + hw[i % 4] + ", please help " + std::to_string(i) + "\",Hardware\n";
    csv += std::string(ac[i % 4]) + " again today,Access\n";
  }
  return csv;
}

TEST(ClassifierCli, TrainClassifyExplainAndCorruptModel) {
  const std::string dir = testing::makeTempDir("cli-train");
  testing::writeFile(dir + "/t.csv", toyCsv());
  const std::string model = dir + "/m.tfmodel";
  auto train = runCommand(binaryPath() + " train --data " + dir + "/t.csv --text-col body --label-col team --out " +
                          model + " --dim-bits 12");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("epoch 1: validation accuracy"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("training took"), std::string::npos);

  auto cls = runCommand(binaryPath() + " classify --model " + model + " --explain \"my laptop screen is cracked\"");
  ASSERT_EQ(cls.exit_code, 0) << cls.output;
  EXPECT_NE(cls.output.find("category   Hardware"), std::string::npos) << cls.output;
  EXPECT_NE(cls.output.find("w:laptop"), std::string::npos) << cls.output;
  EXPECT_NE(cls.output.find("rule that fired: "), std::string::npos);
  EXPECT_NE(cls.output.find("difficulty signals"), std::string::npos);

  auto pinned = runCommand(binaryPath() + " classify --model " + model + " --over-budget \"password reset needed\"");
  ASSERT_EQ(pinned.exit_code, 0) << pinned.output;
  EXPECT_NE(pinned.output.find("by rule budget_"), std::string::npos) << pinned.output;

  std::string bytes = testing::readFile(model);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
  testing::writeFile(dir + "/bad.tfmodel", bytes);
  auto bad = runCommand(binaryPath() + " eval --data " + dir + "/t.csv --text-col body --label-col team --model " +
                        dir + "/bad.tfmodel");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("checksum mismatch"), std::string::npos) << bad.output;
  std::filesystem::remove_all(dir);
}

TEST(ClassifierCli, CalibrateSharesRewritesOnlyTheThresholds) {
  const std::string dir = testing::makeTempDir("cli-calibrate");
  const std::string original = testing::readFile(sourceDir() + "/config/ticketflow.yaml");
  testing::writeFile(dir + "/ticketflow.yaml", original);
  auto out =
      runCommand(binaryPath() + " eval --calibrate-shares 0.65,0.25,0.10 --config " + dir + "/ticketflow.yaml --data " +
                 sourceDir() + "/tests/data/difficulty/tickets.jsonl --label-col difficulty");
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("scored 320 texts"), std::string::npos) << out.output;
  const double easy = figure(out.output, "shares: easy");
  EXPECT_NEAR(easy, 0.65, 0.02) << out.output;
  const std::string rewritten = testing::readFile(dir + "/ticketflow.yaml");
  EXPECT_NE(rewritten, original);
  // Same lines except the two thresholds.
  std::istringstream a(original), b(rewritten);
  std::string la, lb;
  int changed = 0;
  while (std::getline(a, la) && std::getline(b, lb))
    if (la != lb) {
      ++changed;
      EXPECT_TRUE(lb.find("easy_below:") != std::string::npos || lb.find("hard_from:") != std::string::npos) << lb;
    }
  EXPECT_EQ(changed, 2);
  auto check = runCommand(binaryPath() + " config check " + dir + "/ticketflow.yaml");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  std::filesystem::remove_all(dir);
}

TEST(ClassifierCli, BenchPrintsThroughputAndP99) {
  const std::string data = testing::itTicketsDir();
  const std::string file = data.empty() ? sourceDir() + "/tests/data/difficulty/tickets.jsonl" : data + "/dev.jsonl";
  const std::string label = data.empty() ? " --label-col difficulty" : "";
  auto out = runCommand(binaryPath() + " bench classifier --rounds 1 --model " + sourceDir() + kShippedModel +
                        " --data " + file + label);
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_GT(figure(out.output, "throughput"), 0) << out.output;
  EXPECT_NE(out.output.find("p99 "), std::string::npos);
}

}  // namespace
}  // namespace ticketflow
