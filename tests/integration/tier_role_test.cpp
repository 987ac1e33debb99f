// The tier pool role end to end on the embedded broker and the provider simulator: routed
// tickets in, schema-valid results out; escalations go to the next tier's topic; malformed input
// is dead-lettered; with cluster-wide admission on a real redis-server, tickets beyond the
// model's concurrency all complete, each charged once.
#include "tier/tier_role.hpp"

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/admission_on_redis.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/services.hpp"
#include "fixtures/simulator.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

std::optional<std::string> noEnv(const std::string&) {
  return std::nullopt;
}

class TierRoleTest : public testing::KafkaTest {
 protected:
  Config configFor(const sim::ProviderSimulator& sim, double escalate_below, const std::string& model_limits = "{}") {
    const std::string yaml = R"(
version: 1
kafka:
  bootstrap_servers: 127.0.0.1:9092
  topics: {inbound: in, tier_prefix: tier., results: results, updates: updates, dlq: dlq}
  consumer_groups: {intake: g-intake, tier_prefix: g-tier-, results: g-results}
redis: {url: "redis://127.0.0.1:6379/0"}
providers:
  - {name: sim, api: anthropic, base_url: ")" +
                             sim.baseUrl() + R"("}
models:
  - {name: m, provider: sim, model_id: test-model, input_usd_per_mtok: 0.5, output_usd_per_mtok: 1.5, limits: )" +
                             model_limits + R"(}
tiers:
  - {name: fast, models: [m], escalate_below_confidence: )" +
                             std::to_string(escalate_below) + R"(}
  - {name: frontier, models: [m]}
stage: {max_in_flight: 64, worker_threads: 2, commit_interval_ms: 200, drain_deadline_ms: 5000, retry_backoff_initial_ms: 10, retry_backoff_max_ms: 100}
)";
    Config c = loadConfigText(yaml, "test.yaml", "/tmp", noEnv);
    c.kafka = kafka_;
    for (const auto& t : c.tiers) EXPECT_TRUE(broker().createTopic(c.kafka.tierTopic(t.name), kafka_.partitions).ok());
    return c;
  }

  // Runs the fast tier's stage until `until` returns true or 30 s pass; `admission` as the
  // pipeline gives it (none: calls are not admitted).
  void runFastTier(const Config& config, const std::function<bool()>& until, tier::CallAdmission admission = {},
                   int call_threads = 8) {
    auto http = std::make_shared<http::HttpClient>(http::HttpClientOptions{});
    tier::TierService service(
        config, "fast",
        [http](const ProviderConfig& p, const ModelConfig& m) { return provider::makeModelClient(p, m, http, "k"); },
        SystemClock::instance(), [](std::chrono::milliseconds wait) { std::this_thread::sleep_for(wait); },
        provider::PromptSet::builtin(), tier::TierPolicy{}, admission);
    tier::TierRole role(config, service, call_threads);
    stage::StageOptions options;
    options.name = "tier:fast";
    options.input_topics = {config.kafka.tierTopic("fast")};
    options.group = config.kafka.tierGroup("fast");
    options.dlq_topic = config.kafka.topics.dlq;
    options.limits = config.stage;
    options.handler_hands_off = true;  // as the pipeline runs the tier role
    options.consumer_properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    stage::Stage stage(config.kafka, options, role.handler());
    std::thread runner([&] { (void)stage.run(); });
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!until() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100ms);
    stage.requestStop();
    runner.join();
  }

  static std::vector<testing::Record> routedTickets(int n) {
    std::vector<testing::Record> records;
    for (int i = 0; i < n; ++i) {
      RoutedTicket t;
      t.ticket.id = "T-" + std::to_string(i);
      t.ticket.tenant = "acme";
      t.ticket.body = i % 2 ? "The printer on floor 3 is offline" : "VPN drops every hour";
      t.ticket.created_at = "2026-11-22T10:00:00Z";
      t.trace_id = "0123456789abcdef0123456789abcdef";
      t.received_at = formatRfc3339(std::chrono::system_clock::now());
      t.classification = {"Access", 0.9, Difficulty::kEasy, 0.2, {}};
      t.tier = "fast";
      t.rule = "difficulty easy";
      records.push_back({t.ticket.id, toJson(t)});
    }
    return records;
  }
};

TEST_F(TierRoleTest, RoutedTicketsBecomeSchemaValidResults) {
  sim::ProviderSimulator sim(testing::instantSimulatorOptions());
  const Config config = configFor(sim, 0.0);
  testing::produceAll(kafka_.bootstrap_servers, config.kafka.tierTopic("fast"), routedTickets(30));
  testing::produceAll(kafka_.bootstrap_servers, config.kafka.tierTopic("fast"), {{"BAD-1", "{not json"}});
  testing::TopicReader results(kafka_.bootstrap_servers, config.kafka.topics.results, kafka_.partitions);
  runFastTier(config, [&] {
    results.read(200ms, 30);
    return results.messages().size() >= 30;
  });
  std::set<std::string> ids;
  for (const auto& m : results.messages()) {
    auto r = parseTicketResult(m.value);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(m.key, r->ticket_id);
    EXPECT_EQ(r->tier, "fast");
    EXPECT_EQ(r->provider, "sim");
    EXPECT_TRUE(r->simulated);
    EXPECT_GT(r->cost_micro_usd, 0);
    ids.insert(r->ticket_id);
  }
  EXPECT_EQ(ids.size(), 30u);
  testing::TopicReader dlq(kafka_.bootstrap_servers, config.kafka.topics.dlq, kafka_.partitions);
  dlq.read(5s, 1);
  ASSERT_EQ(dlq.messages().size(), 1u);
  auto dead = parseDeadLetter(dlq.messages()[0].value);
  ASSERT_TRUE(dead.ok()) << dead.error().message;
  EXPECT_EQ(dead->stage, "tier:fast");
  EXPECT_EQ(dead->payload, "{not json");
}

TEST_F(TierRoleTest, LowConfidenceEscalatesToTheNextTiersTopic) {
  sim::ProviderSimulator sim(testing::instantSimulatorOptions());
  const Config config = configFor(sim, 0.99);
  testing::produceAll(kafka_.bootstrap_servers, config.kafka.tierTopic("fast"), routedTickets(5));
  testing::TopicReader frontier(kafka_.bootstrap_servers, config.kafka.tierTopic("frontier"), kafka_.partitions);
  runFastTier(config, [&] {
    frontier.read(200ms, 5);
    return frontier.messages().size() >= 5;
  });
  ASSERT_EQ(frontier.messages().size(), 5u);
  for (const auto& m : frontier.messages()) {
    auto t = parseRoutedTicket(m.value);
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(t->tier, "frontier");
    EXPECT_EQ(t->escalations, 1);
    EXPECT_EQ(t->rule.rfind("escalated from fast", 0), 0u) << t->rule;
  }
}

// Two hundred tickets, 64 in flight at a time, for a model that takes two calls at a time: a
// ticket's admission is asked for before a call thread takes it, and a ticket holding one of the
// two leases must never wait behind tickets waiting for a lease (which would hold both call
// threads until the 30 s rate wait ran out). Every ticket is answered, each charged once, and
// every lease is given back.
TEST_F(TierRoleTest, TicketsBeyondTheModelsConcurrencyAreAllAnsweredAndChargedOnce) {
  sim::ProviderSimulator sim(testing::instantSimulatorOptions());
  const Config config = configFor(sim, 0.0, "{max_concurrency: 2}");
  testing::AdmissionOnRedis redis(1'000'000'000);
  constexpr int kTickets = 200;
  testing::produceAll(kafka_.bootstrap_servers, config.kafka.tierTopic("fast"), routedTickets(kTickets));
  testing::TopicReader results(kafka_.bootstrap_servers, config.kafka.topics.results, kafka_.partitions);
  const int call_threads = tier::callThreadsFor(config, "fast");
  ASSERT_EQ(call_threads, 2);
  runFastTier(
      config,
      [&] {
        results.read(200ms, kTickets);
        return results.messages().size() >= kTickets;
      },
      redis.admission(), call_threads);
  redis.finish();
  std::set<std::string> ids;
  MicroUsd answered_cost = 0;
  for (const auto& m : results.messages()) {
    auto r = parseTicketResult(m.value);
    ASSERT_TRUE(r.ok()) << r.error().message;
    answered_cost += r->cost_micro_usd;
    ids.insert(r->ticket_id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kTickets));
  EXPECT_EQ(results.messages().size(), static_cast<std::size_t>(kTickets));
  EXPECT_GT(answered_cost, 0);
  EXPECT_EQ(redis.globalToday().settled, answered_cost);
  EXPECT_EQ(redis.leasesHeld("sim", "m"), 0);
}

// Stopped in the middle of a backlog (model calls take ~100 ms, two at a time, and the drain
// deadline is short): the tickets that had a turn, their admission asked for early, run to the
// end, and the rest never start, so no lease and no reservation is left behind.
TEST_F(TierRoleTest, AStopMidBacklogLeavesNoLeaseOrReservationBehind) {
  auto options = testing::instantSimulatorOptions();
  options.latency_scale = 0.1;
  sim::ProviderSimulator sim(options);
  Config config = configFor(sim, 0.0, "{max_concurrency: 2}");
  config.stage.drain_deadline_ms = 200;
  testing::AdmissionOnRedis redis(1'000'000'000);
  testing::produceAll(kafka_.bootstrap_servers, config.kafka.tierTopic("fast"), routedTickets(200));
  // Stopped once the first calls are settled: ~200 x 100 ms / 2 of the backlog is still ahead.
  runFastTier(
      config, [&] { return redis.globalToday().settled > 0; }, redis.admission(), tier::callThreadsFor(config, "fast"));
  redis.finish();
  const auto spend = redis.globalToday();
  EXPECT_GT(spend.settled, 0);
  EXPECT_EQ(spend.reserved, 0);
  EXPECT_EQ(redis.leasesHeld("sim", "m"), 0);
}

}  // namespace
}  // namespace ticketflow
