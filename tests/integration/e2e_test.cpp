// End to end with the real binary: `ticketflow run all` in its own process on the local stack,
// tickets produced by kcat, updates read back from Kafka and checked by our validator and by ajv,
// metrics scraped over HTTP, and the process's logs searched for secrets and ticket text.
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/ajv.hpp"
#include "fixtures/environment.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "fixtures/prometheus_text.hpp"
#include "local_stack/local_stack.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/http/client.hpp"

namespace ticketflow {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::configFileFor;

TEST(EndToEnd, KcatTicketsBecomeSchemaValidUpdatesAndLogsHoldNoSecretsOrTicketText) {
  ASSERT_FALSE(findProgram("kcat").empty()) << "kcat is not installed: run scripts/bootstrap";
  ASSERT_TRUE(fs::exists(testing::ajvPath())) << "ajv is not installed: run scripts/bootstrap --test-tools";
  Config config = loadEmbeddedConfig();
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  const std::string dir = testing::makeTempDir("e2e");
  testing::writeFile(dir + "/ticketflow.yaml", configFileFor(config));
  const auto check = testing::runCommand(testing::binaryPath() + " config check " + dir + "/ticketflow.yaml 2>&1");
  ASSERT_EQ(check.exit_code, 0) << check.output;

  const int port = freeLoopbackPort();
  const std::string log = dir + "/run-all.log";
  ChildProcess run(
      {testing::binaryPath(), "run", "all", "--config", dir + "/ticketflow.yaml", "--http-port", std::to_string(port)},
      log);

  // 40 sample tickets and one that is not JSON, keyed by id, through kcat.
  std::vector<Ticket> tickets;
  std::istringstream samples{std::string(*embeddedFile("config/samples/tickets.jsonl"))};
  std::string input;
  for (std::string line; tickets.size() < 40 && std::getline(samples, line);) {
    auto t = parseTicket(line);
    ASSERT_TRUE(t.ok());
    input += t->id + "\t" + line + "\n";
    tickets.push_back(*t);
  }
  input += "NOT-JSON\tthis is not a ticket\n";
  testing::writeFile(dir + "/input.txt", input);
  const auto produced = testing::runCommand("kcat -P -b " + config.kafka.bootstrap_servers + " -t " +
                                            config.kafka.topics.inbound + " -K '\t' -l " + dir + "/input.txt 2>&1");
  ASSERT_EQ(produced.exit_code, 0) << produced.output;

  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  for (auto deadline = std::chrono::steady_clock::now() + 120s;
       updates.messages().size() < tickets.size() && std::chrono::steady_clock::now() < deadline;)
    updates.read(500ms, tickets.size());
  ASSERT_EQ(updates.messages().size(), tickets.size()) << testing::readFile(log).substr(0, 3000);
  std::set<std::string> ids;
  fs::create_directories(dir + "/updates");
  for (const auto& m : updates.messages()) {
    auto u = parseTicketUpdate(m.value);
    ASSERT_TRUE(u.ok()) << u.error().message;
    EXPECT_EQ(m.key, u->ticket_id);
    EXPECT_EQ(u->trace_id.size(), 32u);
    EXPECT_TRUE(u->simulated);
    EXPECT_FALSE(u->category.empty());
    EXPECT_FALSE(u->tier.empty());
    if (u->cache == CacheStatus::kMiss) {
      EXPECT_FALSE(u->model.empty());
      EXPECT_GT(u->usage.input_tokens, 0);
    }
    ids.insert(u->ticket_id);
    testing::writeFile(dir + "/updates/" + u->ticket_id + ".json", m.value);
  }
  EXPECT_EQ(ids.size(), tickets.size());
  const auto verdicts = testing::ajvVerdicts("ticket_update.schema.json", dir + "/updates/*.json");
  EXPECT_EQ(verdicts.size(), tickets.size());
  for (const auto& [file, valid] : verdicts) EXPECT_TRUE(valid) << "ajv: " << file;

  testing::TopicReader dlq(config.kafka.bootstrap_servers, config.kafka.topics.dlq, config.kafka.partitions);
  dlq.read(10s, 1);
  ASSERT_EQ(dlq.messages().size(), 1u);
  auto dead = parseDeadLetter(dlq.messages()[0].value);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->key, "NOT-JSON");
  EXPECT_EQ(dead->stage, "intake");

  // The metrics endpoint, read as a Prometheus server would.
  http::HttpClient http({});
  http::ClientRequest scrape;
  scrape.method = "GET";
  scrape.url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  auto metrics = http.send(scrape);
  ASSERT_TRUE(metrics.ok()) << metrics.error().message;
  ASSERT_EQ(metrics->status, 200);
  const auto parsed = testing::parsePrometheusText(metrics->body);
  ASSERT_TRUE(parsed.error.empty()) << parsed.error;
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
    metrics = http.send(scrape);  // stage counters are exported every 500 ms
    if (testing::parsePrometheusText(metrics->body).value("ticketflow_updates_written_total", {{"sink", "updates"}}) >=
        40)
      break;
    std::this_thread::sleep_for(200ms);
  }
  const auto final_metrics = testing::parsePrometheusText(metrics->body);
  EXPECT_EQ(final_metrics.value("ticketflow_updates_written_total", {{"sink", "updates"}}), 40);
  EXPECT_EQ(final_metrics.value("ticketflow_messages_consumed_total", {{"role", "intake"}}), 41);
  EXPECT_EQ(final_metrics.value("ticketflow_messages_dead_lettered_total", {{"role", "intake"}}), 1);
  EXPECT_EQ(final_metrics.types.at("ticketflow_model_call_seconds"), "histogram");
  double calls = 0;
  for (const auto& s : final_metrics.samples)
    if (s.name == "ticketflow_model_calls_total") calls += s.value;
  EXPECT_GE(calls, 1);
  scrape.url = "http://127.0.0.1:" + std::to_string(port) + "/readyz";
  auto ready = http.send(scrape);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200) << ready->body;

  // SIGTERM: drain, commit, exit 0.
  EXPECT_EQ(run.stop(SIGTERM, 30s), 0);

  const std::string logs = testing::readFile(log);
  EXPECT_NE(logs.find("\"event\":\"starting\""), std::string::npos);
  EXPECT_EQ(logs.find(stack.apiKey()), std::string::npos) << "the API key appears in the logs";
  for (const auto& t : tickets) {
    const std::string fragment = t.body.substr(0, std::min<std::size_t>(t.body.size(), 40));
    EXPECT_EQ(logs.find(fragment), std::string::npos) << "ticket text of " << t.id << " appears in the logs";
  }
  std::istringstream log_lines(logs);
  int json_lines = 0;
  for (std::string line; std::getline(log_lines, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    for (const char* field : {"time", "level", "role", "event"}) EXPECT_TRUE(j.contains(field)) << line;
    ++json_lines;
  }
  EXPECT_GE(json_lines, 3);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ticketflow
