#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/services.hpp"

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
  EXPECT_NE(show.output.find("warning: the ledger's Redis keeps no append-only file"), std::string::npos) << show.output;
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
  testing::writeFile(data,
                     R"({"text": "cannot log in to vpn from home password expired", "category": "Access"})" "\n"
                     R"({"text": "printer on floor three is jammed again", "category": "Hardware"})" "\n"
                     R"({"text": "cannot log in to vpn from home, password expired!", "category": "Access"})" "\n"
                     R"({"text": "please order a new laptop dock for the finance team", "category": "Purchase"})" "\n");
  auto eval = run("cache eval --data " + data + " --thresholds 0.5,0.99");
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  // The third ticket is an exact repeat of the first after normalisation: 1 hit of 4 at 0.99.
  EXPECT_NE(eval.output.find("     0.99       1    25.00%     100.00%"), std::string::npos) << eval.output;
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
