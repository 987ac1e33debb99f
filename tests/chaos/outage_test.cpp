// The fault suite (ctest label "chaos"): the whole pipeline on the local stack while a dependency
// goes away and comes back. Outages are not poison: every ticket gets exactly one update, none is
// dead-lettered, and the budget ledger equals what the provider billed, request by request.
// Each test prints its figures (lost, dead-lettered, held seconds, ledger vs provider) so a run
// shows how the system rode the fault, not only that it did.
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "fixtures/redis_sentinel.hpp"
#include "fixtures/services.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

struct Figures {
  std::size_t tickets = 0;
  std::size_t updated = 0;  // tickets with at least one update
  std::size_t duplicate_updates = 0;
  std::size_t dead_lettered = 0;
  double held_seconds = 0;  // summed over held messages, every role
  std::int64_t held_messages = 0;
  bool readiness_said_why = false;  // /readyz named the outage while it lasted
  MicroUsd updates_cost = 0;
  MicroUsd ledger_settled = 0;
  MicroUsd ledger_reserved = 0;
  sim::BilledRequests provider;
};

std::ostream& operator<<(std::ostream& out, const Figures& f) {
  return out << "tickets " << f.tickets << ", lost " << (f.tickets - f.updated) << ", duplicate updates "
             << f.duplicate_updates << ", dead-lettered " << f.dead_lettered << ", held " << f.held_messages
             << " message(s) for " << f.held_seconds << " s in all, ledger settled " << f.ledger_settled
             << " µ$ (reserved " << f.ledger_reserved << "), provider billed " << f.provider.micro_usd << " µ$ for "
             << f.provider.requests << " requests, updates' cost " << f.updates_cost << " µ$";
}

// Sends `count` tickets through every role; once a quarter of them are answered, `fault(stack,
// true)` takes a dependency away for `outage`, then `fault(stack, false)` brings it back.
// `prepare` may point the configuration elsewhere (another Redis) before the roles start.
Figures runThroughOutage(int count, double latency_scale, std::chrono::seconds outage,
                         const std::function<void(local_stack::LocalStack&, bool down)>& fault,
                         const std::function<void(Config&)>& prepare = {}) {
  Config config = testing::testConfig();
  config.cache.enabled = false;  // every ticket calls a model, so every ticket meets the fault
  const auto dir = std::filesystem::temp_directory_path() / testing::uniqueName("tf-chaos");
  std::filesystem::create_directories(dir);
  local_stack::LocalStackOptions local;
  local.latency_scale = latency_scale;
  local.redis_append_only = true;  // a ledger's Redis keeps its data across a restart
  local.request_log = (dir / "provider-requests.jsonl").string();
  local_stack::LocalStack stack(config, local);
  if (prepare) prepare(config);
  std::ostringstream log;
  pipeline::Pipeline run(config, testing::optionsFor(pipeline::allRoles(config), &log));
  run.start();

  const auto samples = testing::sampleTickets();
  std::vector<Ticket> tickets;
  for (int i = 0; i < count; ++i) {
    Ticket t = samples[static_cast<std::size_t>(i) % samples.size()];
    t.id = "CHAOS-" + std::to_string(i);
    tickets.push_back(std::move(t));
  }
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, testing::recordsOf(tickets));

  Figures f;
  f.tickets = tickets.size();
  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  auto readUntil = [&](std::size_t n, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (updates.messages().size() < n && std::chrono::steady_clock::now() < deadline) updates.read(200ms, n);
  };
  readUntil(tickets.size() / 4, 120s);
  fault(stack, true);
  const auto back_at = std::chrono::steady_clock::now() + outage;
  while (std::chrono::steady_clock::now() < back_at) {
    for (const auto& reason : run.readiness().reasons)
      f.readiness_said_why = f.readiness_said_why || reason.find("holding") != std::string::npos;
    std::this_thread::sleep_for(200ms);
  }
  fault(stack, false);
  readUntil(tickets.size(), 300s);
  updates.read(1500ms);  // a duplicate would show

  std::map<std::string, int> seen;
  for (const auto& m : updates.messages()) {
    auto u = parseTicketUpdate(m.value);
    EXPECT_TRUE(u.ok()) << u.error().message;
    if (!u.ok()) continue;
    if (++seen[u->ticket_id] > 1) ++f.duplicate_updates;
    f.updates_cost += u->cost_micro_usd;
  }
  f.updated = seen.size();
  f.dead_lettered = testing::readTopic(config, config.kafka.topics.dlq, 0, 1s).size();
  for (const auto& role : run.stats())
    for (const auto& o : role.stats.outages) {
      f.held_seconds += o.held_seconds;
      f.held_messages += o.held;
    }
  auto spend = run.ledger().show();
  EXPECT_TRUE(spend.ok()) << spend.error().message;
  if (spend.ok())
    for (const auto& b : *spend)
      if (b.scope == "global" && b.period == "day") {
        f.ledger_settled = b.settled;
        f.ledger_reserved = b.reserved;
      }
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());
  f.provider = sim::billedFromRequestLog(config, local.request_log);
  EXPECT_EQ(f.provider.unknown_models, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (f.dead_lettered > 0 || f.updated < f.tickets) std::cout << log.str().substr(0, 20000);
  return f;
}

void expectNothingLostAndTheLedgerEqualsTheBill(const Figures& f) {
  std::cout << "figures: " << f << std::endl;
  EXPECT_EQ(f.updated, f.tickets) << "lost tickets";
  EXPECT_EQ(f.duplicate_updates, 0u);
  EXPECT_EQ(f.dead_lettered, 0u) << "an outage is not poison";
  EXPECT_GT(f.held_messages, 0) << "the fault did hold messages";
  EXPECT_TRUE(f.readiness_said_why) << "/readyz named the outage while it lasted";
  EXPECT_GT(f.provider.micro_usd, 0);
  EXPECT_EQ(f.ledger_settled, f.provider.micro_usd) << "the ledger equals the provider's bill";
  EXPECT_EQ(f.updates_cost, f.provider.micro_usd) << "the updates' costs add up to the bill";
  EXPECT_EQ(f.ledger_reserved, 0) << "no reservation outlives its call";
}

TEST(Chaos, RedisStoppedTenSecondsMidStreamLosesNothingAndChargesEveryCallOnce) {
  const Figures f = runThroughOutage(1000, 0.05, 10s, [](local_stack::LocalStack& stack, bool down) {
    if (down) {
      stack.redisServer().stop();
    } else {
      stack.redisServer().restart();  // same port, same data (append-only file)
    }
  });
  expectNothingLostAndTheLedgerEqualsTheBill(f);
}

TEST(Chaos, ProviderDownThirtySecondsMidStreamLosesNothingAndChargesEveryCallOnce) {
  const Figures f = runThroughOutage(
      1000, 0.05, 30s, [](local_stack::LocalStack& stack, bool down) { stack.simulator().setUnavailable(down); });
  expectNothingLostAndTheLedgerEqualsTheBill(f);
}

TEST(Chaos, RedisPrimaryKilledMidStreamFailsOverThroughSentinelLosingNothingAndChargingEveryCallOnce) {
  testing::RedisSentinelGroup group;
  const int first_primary = group.firstPrimaryPort();
  int promoted = 0;
  const Figures f = runThroughOutage(
      1000, 0.05, 10s,
      [&](local_stack::LocalStack&, bool down) {
        if (down) {
          group.killFirstPrimary();  // SIGKILL: no goodbye to clients or replicas
        } else {
          promoted = group.primaryPort();
          group.restartFirstPrimary();  // on its data; the sentinels make it a replica of the new primary
        }
      },
      [&](Config& config) {
        config.redis.url = group.url();
        // Replication is asynchronous: a write counts only once the replica has it, so the
        // failover cannot lose a charge or an idempotency mark the old primary acknowledged.
        config.redis.min_replica_acks = 1;
      });
  std::cout << "failover: primary " << first_primary << " killed, sentinels promoted " << promoted << std::endl;
  EXPECT_NE(promoted, 0);
  EXPECT_NE(promoted, first_primary) << "the sentinels promoted the replica within the outage";
  EXPECT_EQ(group.primaryPort(), promoted) << "the old primary came back as a replica, not as the primary";
  expectNothingLostAndTheLedgerEqualsTheBill(f);
}

}  // namespace
}  // namespace ticketflow
