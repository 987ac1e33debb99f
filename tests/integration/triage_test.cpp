// ticketflow triage, the real binary: a dry run prices a backlog and writes an HTML report that
// headless Chromium renders with its charts; a live run on the local stack, killed halfway,
// resumes without sending a finished ticket again.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures/environment.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/process.hpp"

namespace ticketflow {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::binaryPath;
using testing::runCommand;

std::string samplesFile(const std::string& dir, std::size_t count) {
  std::istringstream in{std::string(*embeddedFile("config/samples/tickets.jsonl"))};
  std::string out;
  std::size_t n = 0;
  for (std::string line; n < count && std::getline(in, line); ++n) out += line + "\n";
  const std::string path = dir + "/backlog.jsonl";
  testing::writeFile(path, out);
  return path;
}

TEST(Triage, DryRunReportRendersInChromiumWithItsCharts) {
  const std::string chromium = findProgram("chromium");
  ASSERT_FALSE(chromium.empty()) << "chromium is not installed: run scripts/bootstrap --test-tools (./dev test does)";
  const std::string dir = testing::makeTempDir("triage-report");
  const std::string file = samplesFile(dir, 1000);
  const auto run =
      runCommand(binaryPath() + " triage " + file + " --dry-run --report " + dir + "/report.html 2>&1", 300);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("dry run (no model calls): 328 tickets"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("projected spend"), std::string::npos);
  EXPECT_NE(run.output.find("most repeated issues"), std::string::npos)
      << "the cache replay finds the recurring tickets";

  const auto dom = runCommand(
      chromium + " --headless --no-sandbox --disable-gpu --dump-dom file://" + dir + "/report.html 2>/dev/null", 120);
  ASSERT_EQ(dom.exit_code, 0);
  for (const char* id : {"id=\"chart-categories\"", "id=\"chart-cost\"", "id=\"repeated\""})
    EXPECT_NE(dom.output.find(id), std::string::npos) << id << " missing from the rendered page";
  std::size_t bars = 0;
  for (std::size_t at = dom.output.find("class=\"bar\""); at != std::string::npos;
       at = dom.output.find("class=\"bar\"", at + 1))
    ++bars;
  EXPECT_GE(bars, 10u) << "the charts have their bars";
  const auto shot = runCommand(chromium +
                                   " --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1600 "
                                   "--screenshot=" +
                                   dir + "/report.png file://" + dir + "/report.html 2>&1",
                               120);
  ASSERT_EQ(shot.exit_code, 0) << shot.output;
  ASSERT_TRUE(fs::exists(dir + "/report.png"));
  EXPECT_GT(fs::file_size(dir + "/report.png"), 20'000u) << "a page with charts, not a blank one";
  fs::remove_all(dir);
}

TEST(Triage, ItTicketsCsvIsReadThroughAColumnMap) {
  const std::string data = testing::itTicketsDir();
  if (data.empty()) GTEST_SKIP() << "../shared/data/it-tickets is absent";
  const auto run = runCommand(
      binaryPath() + " triage " + data + "/dev.csv --dry-run --column-map body=text --tenant itsc 2>&1", 300);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("dry run (no model calls): 4785 tickets"), std::string::npos) << run.output;
}

// A dry run priced by a live run's outcomes: each ticket sent to a model costs its cell's live
// mean (here every live ticket cost 1,000 µ$ and would have cost 5,000 on frontier), the
// baseline too, with the range printed; a file without live outcomes is refused by name.
TEST(Triage, ACalibratedDryRunPricesTicketsAtWhatLiveTicketsCost) {
  const std::string dir = testing::makeTempDir("triage-calibration");
  const std::string backlog = samplesFile(dir, 10);
  std::string state = R"({"run":"pilot","source":"pilot.csv"})"
                      "\n";
  for (int i = 0; i < 18; ++i) {
    const char* level = i % 3 == 0 ? "easy" : i % 3 == 1 ? "medium" : "hard";
    state += nlohmann::json{{"outcome",
                             {{"id", "p" + std::to_string(i)},
                              {"tenant", "t"},
                              {"category", "Pilot"},
                              {"difficulty", level},
                              {"cache", "miss"},
                              {"model", "m"},
                              {"cost", 1000},
                              {"frontier", 5000}}}}
                 .dump() +
             "\n";
  }
  state += nlohmann::json{{"outcome",
                           {{"id", "hit"},
                            {"tenant", "t"},
                            {"category", "Pilot"},
                            {"difficulty", "easy"},
                            {"cache", "semantic"},
                            {"cost", 0},
                            {"frontier", 5000}}}}
               .dump() +
           "\n";
  testing::writeFile(dir + "/pilot.state", state);
  const auto run = runCommand(binaryPath() + " triage " + backlog + " --dry-run --state " + dir +
                                  "/x.state --calibration " + dir + "/pilot.state 2>&1",
                              120);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("calibrated by 18 live outcomes"), std::string::npos) << run.output;
  const auto hits_at = run.output.find("cache: ");
  ASSERT_NE(hits_at, std::string::npos) << run.output;
  const int hits = std::atoi(run.output.c_str() + hits_at + 7);
  std::ostringstream spend;
  spend << "projected spend: $0.0" << std::setw(2) << std::setfill('0') << (10 - hits) << "0 vs $0.0500";
  EXPECT_NE(run.output.find(spend.str()), std::string::npos) << spend.str() << "\n" << run.output;
  EXPECT_NE(run.output.find("95% range"), std::string::npos);

  testing::writeFile(dir + "/empty.state", R"({"run":"pilot","source":"pilot.csv"})"
                                           "\n");
  const auto refused =
      runCommand(binaryPath() + " triage " + backlog + " --dry-run --calibration " + dir + "/empty.state 2>&1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("empty.state: no ticket answered by a model"), std::string::npos) << refused.output;
  const auto live = runCommand(binaryPath() + " triage " + backlog + " --calibration " + dir + "/pilot.state 2>&1");
  EXPECT_EQ(live.exit_code, 2) << live.output;
  EXPECT_NE(live.output.find("--calibration goes with --dry-run"), std::string::npos) << live.output;
  fs::remove_all(dir);
}

TEST(Triage, ABadColumnMapPrintsUsage) {
  const auto run = runCommand(binaryPath() + " triage x.csv --column-map colour=red 2>&1");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("unknown ticket field 'colour'"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("usage:"), std::string::npos);
}

struct StateLines {
  std::vector<std::set<std::string>> submitted_batches;
  std::map<std::string, int> outcomes;  // tenant/id -> lines
};

StateLines readState(const std::string& path) {
  StateLines s;
  std::istringstream in(testing::readFile(path));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    if (j.contains("submitted")) s.submitted_batches.push_back(j["submitted"].get<std::set<std::string>>());
    if (j.contains("outcome"))
      ++s.outcomes[j["outcome"]["tenant"].get<std::string>() + "/" + j["outcome"]["id"].get<std::string>()];
  }
  return s;
}

// The processes whose parent is `parent` (from /proc).
std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

TEST(Triage, AnInterruptedLiveRunResumesWithoutRedoingFinishedTickets) {
  const std::string dir = testing::makeTempDir("triage-resume");
  const std::string file = samplesFile(dir, 40);
  const std::string state = dir + "/state.jsonl";
  {
    ChildProcess first(
        {binaryPath(), "triage", file, "--embedded", "--latency-scale", "0", "--rate", "4", "--state", state},
        dir + "/first.log");
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (fs::exists(state) && readState(state).outcomes.size() >= 8) break;
      ASSERT_TRUE(first.running()) << testing::readFile(dir + "/first.log");
      std::this_thread::sleep_for(100ms);
    }
    const std::vector<pid_t> helpers = childrenOf(first.pid());
    ASSERT_FALSE(helpers.empty()) << "the embedded stack's redis-server should be a child";
    first.stop(SIGKILL);
    // A SIGKILLed run leaves nothing behind: its private redis-server follows it.
    for (const pid_t helper : helpers) {
      const auto gone_by = std::chrono::steady_clock::now() + 10s;
      while (::kill(helper, 0) == 0 && std::chrono::steady_clock::now() < gone_by) std::this_thread::sleep_for(50ms);
      EXPECT_NE(::kill(helper, 0), 0) << "helper " << helper << " outlived its killed parent";
    }
  }
  const StateLines before = readState(state);
  ASSERT_GE(before.outcomes.size(), 8u);
  ASSERT_LT(before.outcomes.size(), 40u) << "killed before the end";
  std::size_t batches_before = before.submitted_batches.size();

  const auto second = runCommand(binaryPath() + " triage " + file + " --embedded --latency-scale 0 --state " + state +
                                     " --report " + dir + "/report.html 2>&1",
                                 300);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("40 tickets from"), std::string::npos) << second.output;
  const StateLines after = readState(state);
  EXPECT_EQ(after.outcomes.size(), 40u);
  for (const auto& [key, n] : after.outcomes) EXPECT_EQ(n, 1) << key << " finished twice";
  for (std::size_t b = batches_before; b < after.submitted_batches.size(); ++b)
    for (const auto& key : after.submitted_batches[b])
      EXPECT_EQ(before.outcomes.count(key), 0u) << key << " had finished and was sent again";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ticketflow
