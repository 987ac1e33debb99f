// Exactly once where a person reads it: the result writer, its own process, SIGKILLed and
// restarted ten times while updates flow to the updates topic (results.exactly_once), a webhook,
// Jira and ServiceNow
// (loopback fakes that answer slowly, so kills land between a write and its mark). Every ticket
// system gets one comment or work note per revision; every webhook repeat carries the first
// delivery's Idempotency-Key; nothing is lost. The figures are printed.
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/http_receiver.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "fixtures/ticket_systems.hpp"
#include "local_stack/local_stack.hpp"
#include "results/sinks.hpp"
#include "role_processes.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSystems[] = {"jira", "servicenow", "web"};

TicketResult resultFor(int i) {
  return testing::resultFor("SINK-" + std::to_string(i), kSystems[i % 3], "REF-" + std::to_string(i));
}

// A whole number from the environment, or `fallback` (the longer bench sets these).
int fromEnvironment(const char* name, int fallback) {
  const char* text = std::getenv(name);
  return text && *text ? std::max(1, std::atoi(text)) : fallback;
}

// The short form runs in CI; TICKETFLOW_SINK_CRASH_KILLS=30 runs the longer bench (30 tickets
// a kill, so the stream of 5 results a second outlasts the kills).
TEST(Chaos, SigkillOfTheResultWriterMidStreamWritesOneCommentPerRevision) {
  const int kKills = fromEnvironment("TICKETFLOW_SINK_CRASH_KILLS", 10);
  const int kTickets = 30 * kKills;
  testing::HttpReceiver hook;
  testing::FakeJira jira("bot@acme.example", "jira-token");
  testing::FakeServiceNow snow("bot", "snow-password");
  jira.setLatency(150ms);
  snow.setLatency(150ms);
  for (int i = 0; i < kTickets; ++i) {
    if (i % 3 == 0) jira.createIssue("REF-" + std::to_string(i));
    if (i % 3 == 1) snow.createIncident("REF-" + std::to_string(i));
  }
  ::setenv("TICKETFLOW_TEST_HOOK_SECRET", "hook-secret", 1);
  ::setenv("TICKETFLOW_TEST_JIRA_TOKEN", "jira-token", 1);
  ::setenv("TICKETFLOW_TEST_SNOW_PASSWORD", "snow-password", 1);

  Config config = loadEmbeddedConfig();
  const std::string dir = testing::makeTempDir("chaos-sinks");
  local_stack::LocalStackOptions local;
  local_stack::LocalStack stack(config, local);
  const std::string topic_sink =
      "      kind: topic              # kafka.topics.updates (schemas/ticket_update.schema.json)\n";
  testing::RoleProcesses roles(
      dir, testing::replacedIn(
               testing::replacedIn(
                   testing::configFileFor(config), topic_sink,
                   topic_sink +
                       "      timeout_ms: 2000\n"
                       "    - {name: helpdesk-hook, kind: webhook, url: \"" +
                       hook.url() +
                       "/hook\", secret_env: TICKETFLOW_TEST_HOOK_SECRET, sources: [web], timeout_ms: 2000}\n"
                       "    - {name: jira, kind: jira, url: \"" +
                       jira.url() +
                       "\", username: bot@acme.example, secret_env: TICKETFLOW_TEST_JIRA_TOKEN, timeout_ms: 2000}\n"
                       "    - {name: servicenow, kind: servicenow, url: \"" +
                       snow.url() +
                       "\", username: bot, secret_env: TICKETFLOW_TEST_SNOW_PASSWORD, assignment_groups: {Access: "
                       "Identity Team}, timeout_ms: 2000}\n"),
               "  exactly_once: false", "  exactly_once: true"));
  const std::size_t writer = roles.add({"results"});

  std::vector<testing::Record> records;
  for (int i = 0; i < kTickets; ++i) records.push_back({resultFor(i).ticket_id, toJson(resultFor(i))});
  // 5 results a second for a minute: a restarted writer waits for its partitions (a killed
  // member's session ends after 6 s), so the stream must outlast the ten kills.
  std::thread producer([&] {
    for (std::size_t i = 0; i < records.size(); i += 5) {
      testing::produceAll(
          config.kafka.bootstrap_servers, config.kafka.topics.results,
          std::vector<testing::Record>(records.begin() + static_cast<std::ptrdiff_t>(i),
                                       records.begin() + static_cast<std::ptrdiff_t>(std::min(i + 5, records.size()))));
      std::this_thread::sleep_for(1s);
    }
  });
  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  auto writesSoFar = [&] {
    return jira.requests("POST") + snow.requests("PATCH") + static_cast<int>(hook.requests().size());
  };
  std::mt19937 rng(20261205);
  int kills = 0;
  for (int k = 0; k < kKills; ++k) {
    // Kill only a writer that is writing: once it has sent a few writes since it started, at a
    // random moment while the slow ticket systems are still answering.
    const int before = writesSoFar();
    for (auto deadline = std::chrono::steady_clock::now() + 30s;
         writesSoFar() < before + 3 && std::chrono::steady_clock::now() < deadline;)
      updates.read(50ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 200)(rng)));
    roles.kill(writer);
    ++kills;
    roles.start(writer);
  }
  producer.join();

  auto everyTicketSeen = [&] {
    for (int i = 0; i < kTickets; ++i) {
      const std::string ref = "REF-" + std::to_string(i);
      if (i % 3 == 0 && jira.comments(ref).empty()) return false;
      if (i % 3 == 1 && snow.workNotes(ref).empty()) return false;
    }
    std::set<std::string> hooked;
    for (const auto& r : hook.requests()) hooked.insert(r.header("idempotency-key"));
    return static_cast<int>(hooked.size()) == kTickets / 3;
  };
  auto ticketsOnTopic = [&] {
    std::set<std::string> keys;
    for (const auto& m : updates.messages()) keys.insert(m.key.value_or(""));
    return keys.size();
  };
  for (auto deadline = std::chrono::steady_clock::now() + 180s; std::chrono::steady_clock::now() < deadline;) {
    updates.read(500ms);
    if (everyTicketSeen() && ticketsOnTopic() >= static_cast<std::size_t>(kTickets)) break;
  }
  updates.read(1500ms);  // a late duplicate would show
  roles.stopAll();
  const int topic_lookups = roles.linesInLogs("\"event\":\"update_looked_up\"");
  const int topic_found = roles.linesInLogs("\"found\":true");

  int jira_missing = 0, jira_duplicates = 0, snow_missing = 0, snow_duplicates = 0;
  for (int i = 0; i < kTickets; ++i) {
    const std::string ref = "REF-" + std::to_string(i);
    if (i % 3 == 0) {
      const auto n = static_cast<int>(jira.comments(ref).size());
      jira_missing += n == 0;
      jira_duplicates += std::max(0, n - 1);
    } else if (i % 3 == 1) {
      const auto n = static_cast<int>(snow.workNotes(ref).size());
      snow_missing += n == 0;
      snow_duplicates += std::max(0, n - 1);
    }
  }
  std::map<std::string, int> deliveries;  // per Idempotency-Key
  std::map<std::string, std::string> key_of_ticket;
  bool keys_agree = true;
  for (const auto& r : hook.requests()) {
    const auto body = nlohmann::json::parse(r.body, nullptr, false);
    const std::string ticket = body.is_object() ? body.value("ticket_id", "") : "";
    const std::string key = r.header("idempotency-key");
    ++deliveries[key];
    auto [it, first] = key_of_ticket.emplace(ticket, key);
    keys_agree = keys_agree && (first || it->second == key);
  }
  int hook_repeats = 0;
  for (const auto& [key, n] : deliveries) hook_repeats += n - 1;
  std::map<std::string, int> on_topic;
  for (const auto& m : updates.messages()) ++on_topic[m.key.value_or("")];
  std::cout << "figures: result writer SIGKILLed x" << kills << " | " << kTickets
            << " tickets; jira: " << jira.requests("POST") << " comment POSTs, " << jira_duplicates
            << " duplicate comments, " << jira_missing << " missing, " << jira.requests("GET")
            << " lookups; servicenow: " << snow_duplicates << " duplicate work notes, " << snow_missing << " missing, "
            << snow.requests("GET") << " lookups; webhook: " << deliveries.size() << " keys, " << hook_repeats
            << " repeated deliveries (same key); updates topic: " << on_topic.size() << " tickets, "
            << (updates.messages().size() - on_topic.size())
            << " duplicate messages (read_committed, exactly_once on), " << topic_lookups << " lookups (" << topic_found
            << " found the update there)" << std::endl;
  // Look-ups happen only for writes begun and never marked: the kills did land mid-write.
  EXPECT_GT(jira.requests("GET") + snow.requests("GET"), 0) << "no kill landed between a write and its mark";
  EXPECT_GT(topic_lookups, 0) << "no kill left an update pending on the topic";
  EXPECT_EQ(jira_duplicates, 0) << "a second triage comment on an agent's ticket";
  EXPECT_EQ(snow_duplicates, 0) << "a second work note on an agent's incident";
  EXPECT_EQ(jira_missing, 0);
  EXPECT_EQ(snow_missing, 0);
  EXPECT_EQ(static_cast<int>(deliveries.size()), kTickets / 3) << "every web ticket reached the webhook";
  EXPECT_TRUE(keys_agree) << "every repeat of a webhook delivery carries the first delivery's key";
  EXPECT_EQ(static_cast<int>(on_topic.size()), kTickets) << "lost updates on the topic";
  EXPECT_EQ(updates.messages().size(), on_topic.size()) << "an update twice on the topic with results.exactly_once on";
}

}  // namespace
}  // namespace ticketflow
