// triage --embedded on a backlog larger than the embedded broker keeps (librdkafka's mock cluster
// holds only the newest 5 MiB of each partition): the submitter keeps the unanswered tickets
// within the bound, so every ticket gets its outcome and none is lost to retention.
#include <algorithm>
#include <mutex>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures/environment.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/kafka/client.hpp"
#include "triage/triage.hpp"

namespace ticketflow {
namespace {

TEST(TriageRetention, ABacklogLargerThanTheBrokerKeepsIsAnsweredWhole) {
  const std::string dir = testing::makeTempDir("triage-retention");
  constexpr int kTickets = 400;
  const std::string body(16 * 1024, 'x');
  std::string lines;
  for (int i = 0; i < kTickets; ++i) {
    nlohmann::json t = {
        {"id", "R-" + std::to_string(i)},
        {"subject", "VPN drops every hour"},
        {"body", "My VPN disconnects every hour on the dot, ticket " + std::to_string(i) + ". " + body}};
    lines += t.dump() + "\n";
  }
  const std::string file = dir + "/backlog.jsonl";
  testing::writeFile(file, lines);  // 6.6 MB: more than one partition keeps

  triage::TriageOptions options;
  options.path = file;
  options.defaults.created_at = formatRfc3339(SystemClock::instance().now());  // as the CLI sets it
  options.embedded = true;
  options.local.partitions = 1;
  options.local.latency_scale = 0;
  options.idle_timeout = std::chrono::seconds(60);
  std::mutex mutex;
  std::size_t most_unanswered = 0;
  options.progress = [&](const triage::TriageProgress& p) {
    std::lock_guard lock(mutex);
    most_unanswered = std::max(most_unanswered, p.submitted - std::min(p.submitted, p.done));
  };
  const auto report = triage::runTriage(loadEmbeddedConfig(), options);

  ASSERT_TRUE(report.skipped.empty()) << report.skipped.front();
  EXPECT_EQ(report.missing, 0u);
  ASSERT_EQ(report.outcomes.size(), static_cast<std::size_t>(kTickets));
  for (const auto& o : report.outcomes) EXPECT_FALSE(o.dead_lettered) << o.ticket_id << ": " << o.error;
  // Half of one partition's retention over each ticket's ~20 KB footprint: well under the whole backlog.
  const std::size_t bound = kafka::MockBroker::kPartitionRetentionBytes / 2 / (16 * 1024);
  EXPECT_LE(most_unanswered, bound) << "the submitter ran ahead of the pipeline";
  std::printf("most unanswered at once: %zu of %d (bound %zu)\n", most_unanswered, kTickets, bound);
}

}  // namespace
}  // namespace ticketflow
