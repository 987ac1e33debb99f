// The fault suite (ctest label "chaos"): every role its own `ticketflow run ...` process on the
// local stack, and one of them SIGKILLed and restarted ten times while 1,000 tickets flow.
// Nothing may be lost or dead-lettered; a kill may repeat only the provider requests that were
// in flight in the killed process (their replies went to a dead process), never one whose reply
// was paid for (the ledger replays it), and the test prints how many.
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "fixtures/services.hpp"
#include "role_processes.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/redis/budget_ledger.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

TEST(Chaos, SigkillOfARandomRoleTenTimesLosesNothing) {
  Config config = loadEmbeddedConfig();
  const std::string dir = testing::makeTempDir("chaos-kill");
  local_stack::LocalStackOptions local;
  local.latency_scale = 0.2;  // calls of 100-800 ms: a kill finds some in flight
  local.request_log = dir + "/provider-requests.jsonl";
  local_stack::LocalStack stack(config, local);
  // Every ticket calls a model (no cache hits).
  testing::RoleProcesses roles(
      dir, testing::replacedIn(testing::configFileFor(config), "cache:\n  enabled: true", "cache:\n  enabled: false"));
  roles.add({"intake"});
  roles.add({"results"});
  for (const auto& t : config.tiers) roles.add({"tier", "--tier", t.name});

  const auto samples = testing::sampleTickets();
  std::vector<Ticket> tickets;
  for (int i = 0; i < 1000; ++i) {
    Ticket t = samples[static_cast<std::size_t>(i) % samples.size()];
    t.id = "KILL-" + std::to_string(i);
    tickets.push_back(std::move(t));
  }
  // 50 tickets first, until every role answers; then the rest at 40 a second while a random
  // role is killed every 2.5 s, so that each kill lands mid-stream.
  const auto records = testing::recordsOf(tickets);
  constexpr std::size_t kWarmUp = 50;
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound,
                      std::vector<testing::Record>(records.begin(), records.begin() + kWarmUp));
  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       updates.messages().size() < kWarmUp && std::chrono::steady_clock::now() < deadline;)
    updates.read(200ms, kWarmUp);
  ASSERT_GE(updates.messages().size(), kWarmUp) << "the roles did not start answering";
  std::thread producer([&] {
    for (std::size_t i = kWarmUp; i < records.size(); i += 20) {
      testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound,
                          std::vector<testing::Record>(
                              records.begin() + static_cast<std::ptrdiff_t>(i),
                              records.begin() + static_cast<std::ptrdiff_t>(std::min(i + 20, records.size()))));
      std::this_thread::sleep_for(500ms);
    }
  });
  std::mt19937 rng(20261205);
  std::map<std::string, int> kills;
  // Requests the provider was answering when a tier process died: the most a kill can repeat
  // (their replies go to a dead process; every other paid reply is replayed from the ledger).
  std::int64_t in_flight_at_tier_kills = 0;
  for (int k = 0; k < 10; ++k) {
    updates.read(2500ms);
    const std::size_t victim = std::uniform_int_distribution<std::size_t>(0, roles.size() - 1)(rng);
    if (roles.isTier(victim)) in_flight_at_tier_kills += stack.simulatorStats().in_flight;
    roles.kill(victim);
    ++kills[roles.name(victim)];
    roles.start(victim);
  }
  producer.join();
  auto seen = testing::readUntilEveryKey(updates, tickets.size(), 240s);
  updates.read(1500ms);
  seen.clear();
  for (const auto& m : updates.messages()) ++seen[m.key.value_or("")];
  roles.stopAll();

  const auto dead_letters = testing::readTopic(config, config.kafka.topics.dlq, 0, 1s);
  RedisConfig rc;
  rc.url = config.redis.url;
  auto pool = std::make_shared<redis::RedisPool>(*redis::RedisPoolOptions::fromConfig(rc));
  redis::BudgetLedger ledger(pool, config.budgets, config.redis.key_prefix);
  auto settles = pool->run({redis::RedisCall::command({"XLEN", ledger.auditStreamKey()})});
  ASSERT_TRUE(settles.ok()) << settles.error().message;
  auto spend = ledger.show();
  ASSERT_TRUE(spend.ok()) << spend.error().message;
  MicroUsd settled = 0, reserved = 0;
  for (const auto& b : *spend)
    if (b.scope == "global" && b.period == "day") {
      settled = b.settled;
      reserved = b.reserved;
    }
  const std::int64_t billed = sim::billedFromRequestLog(config, local.request_log).requests;
  const std::int64_t repeated = billed - settles->front().integer;
  std::string killed;
  for (const auto& [role, n] : kills) killed += role + " x" + std::to_string(n) + " ";
  std::cout << "figures: kills " << killed << "| tickets " << tickets.size() << ", lost "
            << (tickets.size() - std::min(tickets.size(), seen.size())) << ", update messages "
            << updates.messages().size() << " (duplicates " << (updates.messages().size() - seen.size())
            << "), dead-lettered " << dead_letters.size() << ", provider requests billed " << billed
            << ", ledger settles " << settles->front().integer << " (requests repeated after a kill: " << repeated
            << ", " << (100.0 * static_cast<double>(repeated) / static_cast<double>(tickets.size()))
            << "% of tickets; in flight at the tier kills: " << in_flight_at_tier_kills << "), ledger settled "
            << settled << " µ$, still reserved " << reserved << " µ$" << std::endl;
  EXPECT_EQ(seen.size(), tickets.size()) << "lost tickets";
  EXPECT_TRUE(dead_letters.empty()) << dead_letters.size() << " dead letters, first: "
                                    << (dead_letters.empty() ? "" : dead_letters[0].value.substr(0, 300));
  EXPECT_GE(repeated, 0) << "the ledger never holds more requests than the provider saw";
  // Only requests cut off by a kill are sent twice: a reply that was paid for is replayed.
  EXPECT_LE(repeated, in_flight_at_tier_kills) << "a paid request was sent again";
}

}  // namespace
}  // namespace ticketflow
