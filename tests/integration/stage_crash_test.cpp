// Crash safety: a stage in a child process is killed with SIGKILL at random points while
// messages flow, and restarted. Nothing may go missing downstream; duplicates may come only
// from work in flight (or finished since the last commit) at each kill.
#include <csignal>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <sys/wait.h>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/services.hpp"
#include "ticketflow/core/process.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;
using testing::KafkaTest;
using testing::Record;
using testing::TopicReader;

class StageCrash : public KafkaTest {};

TEST_F(StageCrash, KilledAndRestartedStageLosesNothing) {
  constexpr int kCount = 10000;
  constexpr int kPartitions = 4;
  constexpr int kKills = 5;
  constexpr int kWindow = 128;
  const std::string input = testing::uniqueName("crash-in");
  const std::string output = testing::uniqueName("crash-out");
  const std::string dlq = testing::uniqueName("crash-dlq");
  const std::string group = testing::uniqueName("crash-group");
  for (const auto& t : {input, output, dlq}) ASSERT_TRUE(broker().createTopic(t, kPartitions).ok());
  const std::string dir = testing::makeTempDir("stage-crash");
  const std::vector<std::string> argv = {TICKETFLOW_STAGE_CHILD, broker().bootstrapServers(), input, output, dlq, group,
                                         std::to_string(kWindow)};

  std::vector<Record> records;
  for (int n = 0; n < kCount; ++n) records.push_back({"INC-" + std::to_string(n % 700), "msg-" + std::to_string(n)});
  // Messages keep arriving through the kills (about 12 s).
  std::thread feeder([&] {
    for (std::size_t i = 0; i < records.size(); i += 200) {
      testing::produceAll(broker().bootstrapServers(), input,
                          std::vector<Record>(records.begin() + static_cast<long>(i),
                                              records.begin() + static_cast<long>(std::min(records.size(), i + 200))));
      std::this_thread::sleep_for(250ms);
    }
  });

  TopicReader out(broker().bootstrapServers(), output, kPartitions);
  std::mt19937 rng(std::random_device{}());
  for (int kill = 0; kill < kKills; ++kill) {
    ChildProcess child(argv, dir + "/child.log");
    // Kill it at a random point once it is doing work (it first has to join the group).
    const std::size_t before = out.messages().size();
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (out.messages().size() == before && std::chrono::steady_clock::now() < deadline) out.read(50ms);
    out.read(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 700)(rng)));
    const int status = child.stop(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child should have been killed, status " << status;
    std::printf("kill %d: %zu messages downstream so far\n", kill + 1, out.messages().size());
  }
  feeder.join();

  ChildProcess last(argv, dir + "/child.log");
  std::set<std::string> distinct;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (distinct.size() < static_cast<std::size_t>(kCount) && std::chrono::steady_clock::now() < deadline) {
    out.read(200ms);
    for (const auto& m : out.messages()) distinct.insert(m.value);
  }
  const int status = last.stop(SIGTERM, 15s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "SIGTERM should drain and exit 0; status " << status;
  out.read(500ms);

  int missing = 0;
  for (const auto& r : records) missing += distinct.count(r.value) ? 0 : 1;
  const std::size_t duplicates = out.messages().size() - distinct.size();
  std::printf("%d kills: %zu downstream, %zu distinct, %d missing, %zu duplicates (window %d)\n", kKills,
              out.messages().size(), distinct.size(), missing, duplicates, kWindow);
  const std::string log = testing::readFile(dir + "/child.log");
  const auto line = log.rfind("stage_test_child:");
  if (line != std::string::npos) std::printf("%s", log.substr(line).c_str());
  EXPECT_EQ(missing, 0);
  // Each kill may redo its in-flight window plus what finished after the last commit (100 ms).
  EXPECT_LE(duplicates, static_cast<std::size_t>(kKills * kWindow * 4));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ticketflow
