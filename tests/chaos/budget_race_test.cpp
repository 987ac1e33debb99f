// The fault suite (ctest label "chaos"): two processes of every tier race one tenant's daily
// cap. The cap holds against the provider's bill, refusals start only once the cap is nearly
// spent (a call refused while others' worst-case reservations stand in the way waits for them),
// the tickets it defers are parked, not dead-lettered, and `budget release` after raising the
// cap sends them back to be answered.
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "role_processes.hpp"
#include "ticketflow/redis/budget_ledger.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

TEST(Chaos, TwoProcessesPerTierRacingATenantCapStayWithinItAndDeferredTicketsComeBack) {
  // $0.25 a day for tenant acme: about half of the 600 tickets (all of them cost ~$0.49 with the
  // simulator's competence model: few escalate to frontier).
  constexpr MicroUsd kCap = 250'000;
  Config config = loadEmbeddedConfig();
  const std::string dir = testing::makeTempDir("chaos-budget");
  local_stack::LocalStackOptions local;
  local.latency_scale = 0.05;
  local.request_log = dir + "/provider-requests.jsonl";
  local_stack::LocalStack stack(config, local);
  std::string yaml =
      testing::replacedIn(testing::configFileFor(config), "cache:\n  enabled: true", "cache:\n  enabled: false");
  yaml = testing::replacedIn(yaml, "  caps:\n",
                             "  caps:\n    - scope: tenant\n      tenant: acme\n      daily_usd: 0.25\n");
  testing::RoleProcesses roles(dir, yaml);
  roles.add({"intake"});
  roles.add({"results"});
  for (const auto& t : config.tiers)
    for (int copy = 0; copy < 2; ++copy) roles.add({"tier", "--tier", t.name});

  const auto samples = testing::sampleTickets();
  std::vector<Ticket> tickets;
  for (int i = 0; i < 600; ++i) {
    Ticket t = samples[static_cast<std::size_t>(i) % samples.size()];
    t.id = "RACE-" + std::to_string(i);
    t.tenant = "acme";
    tickets.push_back(std::move(t));
  }
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, testing::recordsOf(tickets));

  // Until every ticket is answered or parked.
  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  testing::TopicReader deferred(config.kafka.bootstrap_servers, config.kafka.topics.deferred, config.kafka.partitions);
  auto settledTickets = [&] {
    std::set<std::string> ids;
    for (const auto& m : updates.messages()) ids.insert(m.key.value_or(""));
    for (const auto& m : deferred.messages()) ids.insert(m.key.value_or(""));
    return ids.size();
  };
  for (auto deadline = std::chrono::steady_clock::now() + 240s;
       settledTickets() < tickets.size() && std::chrono::steady_clock::now() < deadline;) {
    updates.read(300ms);
    deferred.read(100ms);
  }
  updates.read(1000ms);
  const std::size_t answered_under_cap = updates.messages().size();
  RedisConfig rc;
  rc.url = config.redis.url;
  auto pool = std::make_shared<redis::RedisPool>(*redis::RedisPoolOptions::fromConfig(rc));
  redis::BudgetLedger ledger(pool, config.budgets, config.redis.key_prefix);
  auto tenantSettled = [&] {
    auto spend = ledger.show();
    EXPECT_TRUE(spend.ok()) << spend.error().message;
    if (spend.ok())
      for (const auto& b : *spend)
        if (b.scope == "tenant" && b.name == "acme" && b.period == "day") return b.settled;
    return MicroUsd{-1};
  };
  const MicroUsd settled = tenantSettled();
  const MicroUsd billed = sim::billedFromRequestLog(config, local.request_log).micro_usd;
  const auto dead_while_capped = testing::readTopic(config, config.kafka.topics.dlq, 0, 1s);
  deferred.read(1000ms);
  const auto& parked = deferred.messages();
  std::cout << "figures: tickets " << tickets.size() << ", answered under the cap " << answered_under_cap << ", parked "
            << parked.size() << ", dead-lettered " << dead_while_capped.size() << ", cap " << kCap
            << " µ$, ledger settled " << settled << " µ$ (" << (100.0 * static_cast<double>(settled) / kCap)
            << "% of the cap), provider billed " << billed << " µ$" << std::endl;
  EXPECT_LE(billed, kCap) << "the provider's bill stays within the cap";
  EXPECT_EQ(settled, billed) << "the ledger equals the bill";
  EXPECT_GE(settled * 100, kCap * 95) << "nothing was refused while 5% of the cap was left";
  EXPECT_LT(answered_under_cap, tickets.size()) << "the cap did bite";
  EXPECT_TRUE(dead_while_capped.empty()) << "deferred is not dead";
  EXPECT_GE(parked.size(), tickets.size() - answered_under_cap) << "every ticket not answered is parked";

  // Raising the cap and releasing sends the parked tickets back to their tiers.
  ASSERT_TRUE(ledger.setCap(BudgetScope::kTenant, "acme", redis::BudgetPeriod::kDay, std::nullopt).ok());
  ASSERT_TRUE(ledger.releaseParked(std::nullopt).ok());
  const auto seen = testing::readUntilEveryKey(updates, tickets.size(), 120s);
  roles.stopAll();
  EXPECT_EQ(seen.size(), tickets.size()) << "every parked ticket came back";
  EXPECT_TRUE(testing::readTopic(config, config.kafka.topics.dlq, 0, 1s).empty());
}

}  // namespace
}  // namespace ticketflow
