#include <chrono>
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"

namespace ticketflow {
namespace {

using testing::binaryPath;
using testing::runCommand;
using testing::sourceDir;

const std::vector<std::string> kCommands = {
    "run all",     "run intake",  "run tier",     "run results",   "broker",      "sim",         "submit",
    "triage",      "classify",    "train",        "eval",          "budget show", "budget set",  "budget reset",
    "cache stats", "cache purge", "cache eval",   "config check",  "demo",        "bench stage", "bench classifier",
    "bench tier",  "bench cache", "bench ledger", "bench pipeline"};

TEST(Cli, EveryCommandHasHelp) {
  for (const auto& c : kCommands) {
    auto out = runCommand(binaryPath() + " " + c + " --help");
    EXPECT_EQ(out.exit_code, 0) << c << ": " << out.output;
    EXPECT_NE(out.output.find("usage: ticketflow " + c), std::string::npos) << out.output;
  }
  auto overview = runCommand(binaryPath() + " --help");
  EXPECT_EQ(overview.exit_code, 0);
  for (const auto& c : kCommands) EXPECT_NE(overview.output.find("  " + c), std::string::npos) << c;
}

TEST(Cli, EveryCommandIsBuilt) {
  // A command that is not built would be marked in the overview and exit 2 saying so.
  auto overview = runCommand(binaryPath() + " --help");
  EXPECT_EQ(overview.output.find("not built yet"), std::string::npos) << overview.output;
  for (const auto& c : kCommands) {
    auto help = runCommand(binaryPath() + " " + c + " --help");
    EXPECT_EQ(help.output.find("not built yet"), std::string::npos) << c;
  }
}

TEST(Cli, BadArgumentsPrintUsageAndExit2) {
  auto out = runCommand(binaryPath() + " broker --partitions lots");
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.output.find("--partitions must be an integer"), std::string::npos) << out.output;
  EXPECT_NE(out.output.find("usage: ticketflow broker"), std::string::npos);
  out = runCommand(binaryPath() + " config check");
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.output.find("missing FILE"), std::string::npos) << out.output;
  out = runCommand(binaryPath() + " frobnicate");
  EXPECT_EQ(out.exit_code, 2);
  out = runCommand(binaryPath() + " config frob");
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.output.find("unknown subcommand 'frob'"), std::string::npos) << out.output;
}

TEST(Cli, ConfigCheckAcceptsTheDefault) {
  auto out = runCommand(binaryPath() + " config check " + sourceDir() + "/config/ticketflow.yaml");
  EXPECT_EQ(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find(": ok"), std::string::npos);
  EXPECT_NE(out.output.find("fast [gemini-2.5-flash-lite, deepseek-v4-flash]"), std::string::npos) << out.output;
}

TEST(Cli, ConfigCheckRejectsEachBrokenFileNamingTheField) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sourceDir() + "/tests/data/configs/broken")) {
    const std::string text = testing::readFile(entry.path());
    std::smatch field;
    ASSERT_TRUE(std::regex_search(text, field, std::regex("# expect-field: ?(.*)")));
    auto out = runCommand(binaryPath() + " config check " + entry.path().string());
    EXPECT_EQ(out.exit_code, 1) << entry.path() << ": " << out.output;
    EXPECT_NE(out.output.find(entry.path().string()), std::string::npos) << out.output;
    if (!field[1].str().empty()) {
      EXPECT_NE(out.output.find("field '" + field[1].str() + "'"), std::string::npos) << out.output;
    }
    std::smatch reason, line;
    if (std::regex_search(text, reason, std::regex("# expect-reason: ?(.*)"))) {
      EXPECT_NE(out.output.find(reason[1].str()), std::string::npos) << out.output;
    }
    if (std::regex_search(text, line, std::regex("# expect-line: ?([0-9]+)"))) {
      EXPECT_NE(out.output.find(entry.path().string() + ":" + line[1].str() + ": "), std::string::npos) << out.output;
    }
    // Every error names the line (file:line: ...).
    EXPECT_TRUE(std::regex_search(
        out.output, std::regex(std::regex_replace(entry.path().string(), std::regex("[.]"), "[.]") + ":[0-9]+: ")))
        << out.output;
    // A file that is not a config never crashes the checker (a signal) or leaves it running.
    EXPECT_LT(out.exit_code, 128) << out.output;
    ++n;
  }
  EXPECT_GE(n, 24);
}

// Made here rather than kept in tests/data: each is megabytes.
TEST(Cli, ConfigCheckRefusesHugeScalarsAndAliasesWithoutCrashing) {
  const std::string dir = ::testing::TempDir();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version: 1\na: " + std::string(1'000'000, '9') + "\n", ":2: field 'a': integer out of range"},
      // The first error is the missing section; the megabyte string is still validated, never crashing.
      {"version: 1\nkafka: {bootstrap_servers: " + std::string(1'000'000, 'h') + ":9}\n",
       "missing required field 'redis'"},
      {"version: 1\na: ${A:-" + std::string(1'000'000, 'x') + "}\n", "missing required field 'kafka'"},
      {"version: 1\na: &a " + std::string(3'000'000, 'x') + "\nb: [*a, *a, *a, *a, *a, *a]\n",
       ":3: the document expands to more than 16777216 bytes of text"},
  };
  int n = 0;
  for (const auto& [text, expected] : cases) {
    const std::string path = dir + "/huge_" + std::to_string(n++) + ".yaml";
    testing::writeFile(path, text);
    auto out = runCommand(binaryPath() + " config check " + path + " 2>&1");
    EXPECT_EQ(out.exit_code, 1) << out.output.substr(0, 300);
    EXPECT_NE(out.output.find(expected), std::string::npos) << out.output.substr(0, 300);
  }
}

TEST(Cli, TheEmbeddedBrokersHelpStatesItsSizeLimit) {
  auto out = runCommand(binaryPath() + " broker --help");
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_NE(out.output.find("each partition keeps about 5 MiB"), std::string::npos) << out.output;
}

// An unreachable broker: port 1 on loopback refuses connections.
std::string submitToNowhere(const std::string& extra) {
  const std::string tickets = ::testing::TempDir() + "/nowhere.jsonl";
  testing::writeFile(
      tickets, R"({"schema_version":1,"id":"T-1","tenant":"acme","body":"VPN","created_at":"2026-11-22T10:00:00Z"})"
               "\n");
  return "env TICKETFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1 " + binaryPath() + " submit --config " + sourceDir() +
         "/config/ticketflow.yaml " + tickets + " " + extra;
}

TEST(Cli, SubmitGivesUpOnAnUnreachableBrokerAfterItsTimeout) {
  const auto started = std::chrono::steady_clock::now();
  auto out = runCommand(submitToNowhere("--timeout 2") + " 2>&1", 60);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(out.exit_code, 1) << out.output;
  EXPECT_NE(out.output.find("cannot deliver to tickets.inbound on 127.0.0.1:1 within 2 s"), std::string::npos)
      << out.output;
  EXPECT_NE(out.output.find("--timeout"), std::string::npos);
  EXPECT_LT(took, std::chrono::seconds(30)) << "librdkafka's default would retry for 5 minutes";
}

TEST(Cli, TriageGivesUpOnAnUnreachableBrokerAfterItsIdleTimeout) {
  const std::string tickets = ::testing::TempDir() + "/nowhere-triage.jsonl";
  testing::writeFile(
      tickets, R"({"schema_version":1,"id":"T-1","tenant":"acme","body":"VPN","created_at":"2026-11-22T10:00:00Z"})"
               "\n");
  const auto started = std::chrono::steady_clock::now();
  auto out =
      runCommand("env TICKETFLOW_KAFKA_BOOTSTRAP=127.0.0.1:1 " + binaryPath() + " triage --config " + sourceDir() +
                     "/config/ticketflow.yaml --idle-timeout 2 --state " + tickets + ".state " + tickets + " 2>&1",
                 60);
  EXPECT_EQ(out.exit_code, 1) << out.output;
  EXPECT_NE(out.output.find("on 127.0.0.1:1 was not assigned within 2 s: is the broker reachable?"), std::string::npos)
      << out.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

TEST(Cli, ACommandThatEndsByItselfEndsOnASignal) {
  // submit waits for the broker for up to 10 minutes here; SIGTERM after 2 s ends it at once.
  const auto started = std::chrono::steady_clock::now();
  auto out = runCommand("timeout --preserve-status -s TERM 2 " + submitToNowhere("--timeout 600") + " 2>&1", 60);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(out.exit_code, 128 + 15) << out.output;
  EXPECT_NE(out.output.find("ticketflow submit: interrupted by SIGTERM"), std::string::npos) << out.output;
  EXPECT_LT(took, std::chrono::seconds(30));
}

}  // namespace
}  // namespace ticketflow
