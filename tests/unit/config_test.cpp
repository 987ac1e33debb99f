#include "ticketflow/config/config.hpp"

#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"

namespace ticketflow {
namespace {

using testing::readFile;
using testing::sourceDir;

std::optional<std::string> noEnv(const std::string&) {
  return std::nullopt;
}
std::optional<std::string> fakeEnv(const std::string& name) {
  if (name == "TF_TEST_BOOTSTRAP") return std::string("kafka-a:9093,kafka-b:9093");
  if (name == "TF_TEST_PORT") return std::string("9999");
  if (name == "TF_TEST_EMPTY") return std::string("");
  return std::nullopt;
}

TEST(Config, DefaultFileLoadsWithPricesInMicroDollars) {
  const Config c = loadConfig(sourceDir() + "/config/ticketflow.yaml", noEnv);
  EXPECT_EQ(c.kafka.bootstrap_servers, "127.0.0.1:9092");  // the ${...:-fallback}
  ASSERT_NE(c.findModel("gemini-2.5-flash-lite"), nullptr);
  EXPECT_EQ(c.findModel("gemini-2.5-flash-lite")->input_micro_usd_per_mtok, 100'000);
  EXPECT_EQ(c.findModel("deepseek-v4-flash")->input_micro_usd_per_mtok, 140'000);
  EXPECT_EQ(c.findModel("deepseek-v4-flash")->output_micro_usd_per_mtok, 280'000);
  EXPECT_EQ(c.findModel("claude-sonnet-4.5")->output_micro_usd_per_mtok, 15'000'000);
  EXPECT_EQ(c.findModel("claude-opus-4.7")->input_micro_usd_per_mtok, 5'000'000);
  EXPECT_EQ(c.findModel("gpt-5.5")->output_micro_usd_per_mtok, 30'000'000);
  EXPECT_EQ(c.findModel("deepseek-v4-pro")->output_micro_usd_per_mtok, 870'000);
  ASSERT_EQ(c.tiers.size(), 3u);
  EXPECT_EQ(c.tierIndex("frontier"), 2);
  EXPECT_EQ(c.routing.hard_tier, "frontier");
  EXPECT_EQ(c.kafka.tierTopic("fast"), "tickets.tier.fast");
  EXPECT_EQ(c.redis.password, "");
  EXPECT_EQ(c.resolvePath(c.classifier.category_model),
            std::filesystem::path(sourceDir() + "/config/models/category.tfmodel").lexically_normal().string());
}

TEST(Config, EmbeddedDefaultEqualsTheFile) {
  const std::string file = readFile(sourceDir() + "/config/ticketflow.yaml");
  const Config embedded = loadEmbeddedConfig(noEnv);
  const Config from_file = loadConfig(sourceDir() + "/config/ticketflow.yaml", noEnv);
  EXPECT_EQ(embedded.models.size(), from_file.models.size());
  EXPECT_EQ(embedded.tiers.size(), from_file.tiers.size());
  EXPECT_FALSE(file.empty());
}

TEST(Config, EnvironmentReferencesAreSubstitutedAndTyped) {
  const std::string yaml =
      readFile(sourceDir() + "/tests/data/configs/minimal.yaml") + "observability:\n  http_port: ${TF_TEST_PORT}\n";
  std::string text = std::regex_replace(yaml, std::regex("bootstrap_servers: 127.0.0.1:9092"),
                                        "bootstrap_servers: ${TF_TEST_BOOTSTRAP}");
  const Config c = loadConfigText(text, "test.yaml", "/tmp", fakeEnv);
  EXPECT_EQ(c.kafka.bootstrap_servers, "kafka-a:9093,kafka-b:9093");
  EXPECT_EQ(c.observability.http_port, 9999);
}

TEST(Config, EmptyVariableTakesTheFallback) {
  std::string text = readFile(sourceDir() + "/tests/data/configs/minimal.yaml");
  text = std::regex_replace(text, std::regex("bootstrap_servers: 127.0.0.1:9092"),
                            "bootstrap_servers: ${TF_TEST_EMPTY:-fallback:1}");
  EXPECT_EQ(loadConfigText(text, "t.yaml", "/tmp", fakeEnv).kafka.bootstrap_servers, "fallback:1");
}

TEST(Config, MissingFileNamesTheFile) {
  try {
    loadConfig("/nonexistent/ticketflow.yaml", noEnv);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ticketflow.yaml"), std::string::npos);
  }
}

TEST(Config, CostIsExactAndRoundsUp) {
  ModelConfig m;
  m.input_micro_usd_per_mtok = 3'000'000;    // $3 / M
  m.output_micro_usd_per_mtok = 15'000'000;  // $15 / M
  EXPECT_EQ(m.costMicroUsd(1'000'000, 0), 3'000'000);
  EXPECT_EQ(m.costMicroUsd(1000, 500), 3000 + 7500);
  EXPECT_EQ(m.costMicroUsd(1, 0), 3);
  m.input_micro_usd_per_mtok = 100'000;  // $0.10 / M: one token costs 0.1 micro-dollar
  EXPECT_EQ(m.costMicroUsd(1, 0), 1);    // rounded up, never under-counted
  EXPECT_EQ(m.costMicroUsd(10, 0), 1);
  EXPECT_EQ(m.costMicroUsd(11, 0), 2);
}

// Each file in tests/data/configs/broken names the field and reason it must be refused for.
TEST(Config, EveryBrokenConfigFailsNamingItsField) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sourceDir() + "/tests/data/configs/broken")) {
    const std::string text = readFile(entry.path());
    std::smatch field, reason;
    ASSERT_TRUE(std::regex_search(text, field, std::regex("# expect-field: ?(.*)"))) << entry.path();
    ASSERT_TRUE(std::regex_search(text, reason, std::regex("# expect-reason: (.*)"))) << entry.path();
    try {
      loadConfig(entry.path(), noEnv);
      ADD_FAILURE() << entry.path() << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.field(), field[1].str()) << entry.path() << ": " << e.what();
      EXPECT_NE(e.reason().find(reason[1].str()), std::string::npos) << entry.path() << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(entry.path().string()), std::string::npos);
    }
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

TEST(Config, ErrorCarriesTheLineNumber) {
  try {
    loadConfig(sourceDir() + "/tests/data/configs/broken/wrong_type.yaml", noEnv);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("wrong_type.yaml:8: field 'redis.pool_size'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ticketflow
