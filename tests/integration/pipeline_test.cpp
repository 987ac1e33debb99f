// The whole pipeline on the local stack (embedded broker, private redis-server, provider
// simulator): intake, tier pools and result writers together, with faults, budget caps and sinks.
#include "pipeline/pipeline.hpp"

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/http_receiver.hpp"
#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "fixtures/ticket_systems.hpp"
#include "local_stack/local_stack.hpp"
#include "results/results_role.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

using testing::optionsFor;
using testing::readTopic;
using testing::recordsOf;
using testing::sampleTickets;
using testing::testConfig;

TEST(Pipeline, FiveThousandTicketsWithFaultsYieldOneUpdateEachAndTheLedgerHoldsTheirCost) {
  Config config = testConfig();
  config.cache.enabled = false;  // every ticket calls a model, so every ticket meets the faults
  // Injected 429s are random, not caused by load: with a retry-after each would rightly stop the
  // model cluster-wide (rate_limiter_test covers that); here they are plain retries.
  for (auto& m : config.models) m.limits = {};
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local.faults = sim::FaultRates{};
  local.faults->rate_429 = 0.05;
  local.faults->retry_after_s = 0;
  local.faults->rate_500 = 0.02;
  local.faults->rate_malformed = 0.01;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor(pipeline::allRoles(config), &log));
  run.start();

  const auto samples = sampleTickets();
  std::vector<Ticket> tickets;
  for (int i = 0; i < 5000; ++i) {
    Ticket t = samples[static_cast<std::size_t>(i) % samples.size()];
    t.id = "LOAD-" + std::to_string(i);
    tickets.push_back(std::move(t));
  }
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, recordsOf(tickets));
  const auto updates = readTopic(config, config.kafka.topics.updates, tickets.size(), 300s);

  std::map<std::string, int> seen;
  MicroUsd total = 0;
  for (const auto& m : updates) {
    auto u = parseTicketUpdate(m.value);
    ASSERT_TRUE(u.ok()) << u.error().message;
    ++seen[u->ticket_id];
    total += u->cost_micro_usd;
  }
  EXPECT_EQ(seen.size(), tickets.size());
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id << " has " << n << " updates";
  const auto dlq = readTopic(config, config.kafka.topics.dlq, 0, 1s);
  EXPECT_TRUE(dlq.empty()) << dlq.size()
                           << " dead letters, first: " << (dlq.empty() ? "" : dlq[0].value.substr(0, 300));
  const auto sim_stats = stack.simulatorStats();
  EXPECT_GT(sim_stats.rate_limited, 100) << "the faults did happen";
  EXPECT_GT(sim_stats.server_errors, 30);
  EXPECT_GT(sim_stats.malformed, 10);

  auto spend = run.ledger().show();
  ASSERT_TRUE(spend.ok()) << spend.error().message;
  std::optional<MicroUsd> settled;
  for (const auto& b : *spend)
    if (b.scope == "global" && b.period == "day") settled = b.settled;
  ASSERT_TRUE(settled.has_value());
  EXPECT_GT(total, 0);
  EXPECT_EQ(*settled, total) << "the ledger's spend equals the sum of the updates' costs";
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());
}

TEST(Pipeline, IntakeDeadLettersBadTicketsAtOnceAndAnswersRepeatsFromTheCache) {
  Config config = testConfig();
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor(pipeline::allRoles(config), &log));
  run.start();

  Ticket original = sampleTickets().at(0);
  original.id = "FIRST-1";
  original.subject = "3rd floor printer offline";
  original.body = "The printer on the 3rd floor shows offline and the print queue is stuck since this morning.";
  testing::produceAll(
      config.kafka.bootstrap_servers, config.kafka.topics.inbound,
      {{original.id, toJson(original)},
       {"BAD-1", "{not json"},
       {"BAD-2", R"({"schema_version":1,"id":"BAD-2","tenant":"acme","created_at":"2026-11-22T10:00:00Z"})"}});
  auto first = readTopic(config, config.kafka.topics.updates, 1, 60s);
  ASSERT_EQ(first.size(), 1u);
  auto first_update = parseTicketUpdate(first[0].value);
  ASSERT_TRUE(first_update.ok());

  // The same text later, from the same tenant and from another one.
  Ticket repeat = original;
  repeat.id = "REPEAT-1";
  Ticket other_tenant = original;
  other_tenant.id = "OTHER-1";
  other_tenant.tenant = "globex";
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, recordsOf({repeat, other_tenant}));
  const auto all = readTopic(config, config.kafka.topics.updates, 3, 60s);
  ASSERT_EQ(all.size(), 3u);
  for (const auto& m : all) {
    auto u = parseTicketUpdate(m.value);
    ASSERT_TRUE(u.ok());
    if (u->ticket_id == "REPEAT-1") {
      EXPECT_EQ(u->cache, CacheStatus::kExact);
      EXPECT_EQ(u->cost_micro_usd, 0);
      EXPECT_EQ(u->cache_source_ticket_id, "FIRST-1");
      EXPECT_EQ(u->cache_saved_micro_usd, first_update->cost_micro_usd);
      EXPECT_TRUE(u->model.empty());
    } else if (u->ticket_id == "OTHER-1") {
      EXPECT_EQ(u->cache, CacheStatus::kMiss) << "another tenant never sees acme's answer";
      EXPECT_GT(u->cost_micro_usd, 0);
    }
  }
  const auto dlq = readTopic(config, config.kafka.topics.dlq, 2, 30s);
  ASSERT_EQ(dlq.size(), 2u);
  std::map<std::string, DeadLetter> dead;
  for (const auto& m : dlq) {
    auto d = parseDeadLetter(m.value);
    ASSERT_TRUE(d.ok()) << d.error().message;
    dead[d->key] = *d;
  }
  EXPECT_EQ(dead["BAD-1"].stage, "intake");
  EXPECT_EQ(dead["BAD-1"].attempts, 1) << "malformed input is not retried";
  EXPECT_EQ(dead["BAD-1"].payload, "{not json");
  EXPECT_NE(dead["BAD-2"].error.find("body"), std::string::npos) << dead["BAD-2"].error;
  EXPECT_EQ(dead["BAD-2"].error_class, ErrorCode::kSchemaViolation);
}

// In-flight coalescing: near-duplicates that arrive while the first copy is still being answered
// wait for its answer instead of calling a model. One ticket is answered by a model; the others
// are served from its answer (coalesced, or exact when they came after it), at no cost.
TEST(Pipeline, NearDuplicatesOfATicketStillBeingAnsweredWaitForItsAnswer) {
  Config config = testConfig();
  local_stack::LocalStackOptions local;
  local.latency_scale = 1.0;  // a call takes about half a second: the copies arrive during it
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor(pipeline::allRoles(config), &log));
  run.start();
  std::vector<Ticket> copies;
  for (int i = 0; i < 6; ++i) {
    Ticket t = sampleTickets().at(0);
    t.id = "COPY-" + std::to_string(i);
    t.subject = "3rd floor printer offline";
    t.body = "The printer on the 3rd floor shows offline and the print queue is stuck since this morning." +
             std::string(i % 2 ? " Thanks!" : "");
    copies.push_back(t);
  }
  // Intake is consuming (another ticket went through), and the first copy is registered as in
  // flight before the rest arrive: copies handled by two intake threads at the same moment may
  // both be routed (docs/semantic-cache.md).
  Ticket warm_up = sampleTickets().at(2);
  warm_up.id = "WARM-UP";
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, recordsOf({warm_up}));
  ASSERT_EQ(readTopic(config, config.kafka.topics.updates, 1, 60s).size(), 1u);
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, recordsOf({copies[0]}));
  std::this_thread::sleep_for(200ms);
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound,
                      recordsOf(std::vector<Ticket>(copies.begin() + 1, copies.end())));
  auto updates = readTopic(config, config.kafka.topics.updates, copies.size() + 1, 60s);
  ASSERT_EQ(updates.size(), copies.size() + 1);
  updates.erase(
      std::remove_if(updates.begin(), updates.end(), [](const auto& m) { return m.key.value_or("") == "WARM-UP"; }),
      updates.end());
  ASSERT_EQ(updates.size(), copies.size());
  int answered_by_a_model = 0, coalesced = 0, served_from_cache = 0;
  MicroUsd cost = 0;
  std::string seen;  // for a failure's message
  for (const auto& m : updates) {
    auto u = parseTicketUpdate(m.value);
    ASSERT_TRUE(u.ok()) << u.error().message;
    seen += u->ticket_id + ":" + cacheStatusName(u->cache) + ":" + u->tier + ":" + std::to_string(u->latency_ms) + " ";
    cost += u->cost_micro_usd;
    if (u->cache == CacheStatus::kMiss) {
      ++answered_by_a_model;
      continue;
    }
    ++served_from_cache;
    if (u->cache == CacheStatus::kCoalesced) ++coalesced;
    EXPECT_EQ(u->cost_micro_usd, 0);
    EXPECT_EQ(u->cache_source_ticket_id.rfind("COPY-", 0), 0u);
  }
  EXPECT_EQ(answered_by_a_model, 1) << seen;
  EXPECT_EQ(served_from_cache, 5);
  EXPECT_GE(coalesced, 1) << "every copy came after the answer: nothing was in flight";
  EXPECT_GT(cost, 0);
  EXPECT_LE(stack.simulatorStats().requests, 3) << "the copies called models";

  // Identical copies all at once: intake threads that handle two at the same moment are told
  // apart by the claim on the exact text, so one is answered and the rest wait for it.
  std::vector<Ticket> burst;
  for (int i = 0; i < 6; ++i) {
    Ticket t = sampleTickets().at(0);
    t.id = "BURST-" + std::to_string(i);
    t.subject = "Outlook keeps asking for my password";
    t.body = "Since the update this morning Outlook asks for my password every few minutes and will not sync.";
    burst.push_back(t);
  }
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, recordsOf(burst));
  auto burst_updates = readTopic(config, config.kafka.topics.updates, copies.size() + 1 + burst.size(), 60s);
  int burst_answered_by_a_model = 0, burst_seen = 0;
  std::string burst_log;
  for (const auto& m : burst_updates) {
    if (m.key.value_or("").rfind("BURST-", 0) != 0) continue;
    auto u = parseTicketUpdate(m.value);
    ASSERT_TRUE(u.ok()) << u.error().message;
    ++burst_seen;
    burst_log += u->ticket_id + ":" + cacheStatusName(u->cache) + " ";
    if (u->cache == CacheStatus::kMiss) ++burst_answered_by_a_model;
  }
  EXPECT_EQ(burst_seen, 6);
  EXPECT_EQ(burst_answered_by_a_model, 1) << burst_log;
}

Ticket routedSample(const std::string& id) {
  Ticket t = sampleTickets().at(1);
  t.id = id;
  return t;
}

RoutedTicket routedTo(const std::string& tier, const Ticket& t) {
  RoutedTicket r;
  r.ticket = t;
  r.trace_id = "0123456789abcdef0123456789abcdef";
  r.received_at = formatRfc3339(std::chrono::system_clock::now());
  r.classification = {"Access", 0.9, Difficulty::kHard, 0.8, {}};
  r.tier = tier;
  r.rule = "test";
  return r;
}

class BudgetPolicyTest : public ::testing::TestWithParam<BudgetPolicy> {};

TEST_P(BudgetPolicyTest, AFrontierCapWithoutRoomAppliesThePolicy) {
  Config config = testConfig();
  config.budgets.on_exhausted = GetParam();
  config.budgets.caps = {BudgetCap{BudgetScope::kTier, "", "frontier", 1, std::nullopt}};  // one micro-dollar a day
  config.stage.max_attempts = 2;
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  // Intake runs too: its parking stage sends deferred tickets back.
  pipeline::Pipeline run(config,
                         optionsFor({{pipeline::Role::kTier, "frontier"}, {pipeline::Role::kIntake, ""}}, &log));
  run.start();
  const RoutedTicket routed = routedTo("frontier", routedSample("CAPPED-1"));
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.tierTopic("frontier"),
                      {{routed.ticket.id, toJson(routed)}});
  switch (GetParam()) {
    case BudgetPolicy::kDowngrade: {
      const auto down = readTopic(config, config.kafka.tierTopic("balanced"), 1, 60s);
      ASSERT_EQ(down.size(), 1u);
      auto t = parseRoutedTicket(down[0].value);
      ASSERT_TRUE(t.ok()) << t.error().message;
      EXPECT_EQ(t->budget_state, BudgetState::kDowngraded);
      EXPECT_EQ(t->rule.rfind("budget_downgrade from frontier", 0), 0u) << t->rule;
      break;
    }
    case BudgetPolicy::kHuman: {
      const auto results = readTopic(config, config.kafka.topics.results, 1, 60s);
      ASSERT_EQ(results.size(), 1u);
      auto r = parseTicketResult(results[0].value);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_TRUE(r->answer.needs_human);
      EXPECT_NE(r->answer.needs_human_reason.find("budget"), std::string::npos);
      EXPECT_EQ(r->cost_micro_usd, 0);
      EXPECT_TRUE(r->model.empty());
      break;
    }
    case BudgetPolicy::kDefer: {
      // Parked on the deferred topic until the cap's day ends (never dead-lettered, and not in
      // the way of other tickets of the tier); `budget release` after the cap is raised sends
      // it back, and it is answered.
      const auto parked = readTopic(config, config.kafka.topics.deferred, 1, 60s);
      ASSERT_EQ(parked.size(), 1u);
      auto t = parseRoutedTicket(parked[0].value);
      ASSERT_TRUE(t.ok()) << t.error().message;
      EXPECT_EQ(t->budget_state, BudgetState::kDeferred);
      EXPECT_EQ(t->tier, "frontier");
      EXPECT_EQ(t->tier_visits, 1);
      const auto until = parked[0].header(kParkedUntilHeader);
      ASSERT_TRUE(until.has_value());
      const auto midnight = redis::BudgetLedger::periodEnd(
          "tier:frontier:day:" + formatRfc3339(std::chrono::system_clock::now()).substr(0, 10));
      EXPECT_EQ(parseRfc3339(*until), midnight) << *until;
      EXPECT_NE(parked[0].header(kParkedReasonHeader).value_or("").find("tier:frontier:day"), std::string::npos);
      std::this_thread::sleep_for(2s);  // parked: not sent back before it is due
      EXPECT_TRUE(readTopic(config, config.kafka.topics.results, 0, 1s).empty());
      EXPECT_TRUE(readTopic(config, config.kafka.topics.dlq, 0, 1s).empty()) << "deferred is not dead";
      EXPECT_EQ(stack.simulatorStats().requests, 0) << "no call without budget";
      ASSERT_TRUE(run.ledger().setCap(BudgetScope::kTier, "frontier", redis::BudgetPeriod::kDay, std::nullopt).ok());
      ASSERT_TRUE(run.ledger().releaseParked(routed.ticket.tenant).ok());
      const auto results = readTopic(config, config.kafka.topics.results, 1, 60s);
      ASSERT_EQ(results.size(), 1u) << "released, it goes back to its tier and is answered";
      auto r = parseTicketResult(results[0].value);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_FALSE(r->model.empty());
      EXPECT_GT(r->cost_micro_usd, 0);
      return;
    }
  }
  EXPECT_EQ(stack.simulatorStats().requests, 0) << "no call without budget";
  auto spend = run.ledger().show();
  ASSERT_TRUE(spend.ok());
  for (const auto& b : *spend) EXPECT_EQ(b.settled, 0) << b.scope << " " << b.name;
}

INSTANTIATE_TEST_SUITE_P(Policies, BudgetPolicyTest,
                         ::testing::Values(BudgetPolicy::kDowngrade, BudgetPolicy::kHuman, BudgetPolicy::kDefer),
                         [](const auto& policy) { return std::string(budgetPolicyName(policy.param)); });

TEST(Pipeline, IntakeRoutesWithTheBudgetState) {
  Config config = testConfig();
  config.budgets.on_exhausted = BudgetPolicy::kHuman;
  config.budgets.caps.clear();
  for (const auto& t : config.tiers)
    config.budgets.caps.push_back(BudgetCap{BudgetScope::kTier, "", t.name, 1, std::nullopt});
  local_stack::LocalStackOptions local;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kIntake, ""}}, &log));
  run.start();
  Ticket t = sampleTickets().at(3);
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, recordsOf({t}));
  const auto results = readTopic(config, config.kafka.topics.results, 1, 60s);
  const auto dead = readTopic(config, config.kafka.topics.dlq, 0, 1s);
  ASSERT_EQ(results.size(), 1u) << "a ticket no tier has budget for is handed to humans at intake; dead letters: "
                                << (dead.empty() ? "none" : dead[0].value.substr(0, 600));
  auto r = parseTicketResult(results[0].value);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->answer.needs_human);
  EXPECT_NE(r->answer.needs_human_reason.find("budget"), std::string::npos);
  EXPECT_EQ(r->cost_micro_usd, 0);
  for (const auto& tier : config.tiers)
    EXPECT_TRUE(readTopic(config, config.kafka.tierTopic(tier.name), 0, 1s).empty()) << tier.name;
}

TEST(Pipeline, EscalatedTicketsCarryWhatTheLowerTierSpent) {
  Config config = testConfig();
  config.tiers[0].escalate_below_confidence = 1.01;  // the fast tier always passes the ticket up
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config,
                         optionsFor({{pipeline::Role::kTier, "fast"}, {pipeline::Role::kTier, "balanced"}}, &log));
  run.start();
  const RoutedTicket routed = routedTo("fast", routedSample("UP-1"));
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.tierTopic("fast"),
                      {{routed.ticket.id, toJson(routed)}});
  const auto results = readTopic(config, config.kafka.topics.results, 1, 60s);
  ASSERT_EQ(results.size(), 1u);
  auto r = parseTicketResult(results[0].value);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tier, "balanced");
  // Every move is on the record, with why.
  ASSERT_EQ(r->route.moves.size(), 1u);
  EXPECT_EQ(r->route.routed_tier, "fast");
  EXPECT_EQ(r->route.moves[0].from, "fast");
  EXPECT_EQ(r->route.moves[0].to, "balanced");
  EXPECT_EQ(r->route.moves[0].reason, "low_confidence");
  auto spend = run.ledger().show();
  ASSERT_TRUE(spend.ok());
  MicroUsd fast = 0, balanced = 0;
  for (const auto& b : *spend) {
    if (b.scope == "tier" && b.period == "day" && b.name == "fast") fast = b.settled;
    if (b.scope == "tier" && b.period == "day" && b.name == "balanced") balanced = b.settled;
  }
  EXPECT_GT(fast, 0);
  EXPECT_GT(balanced, 0);
  EXPECT_EQ(r->cost_micro_usd, fast + balanced) << "the result's cost is the ticket's whole cost";
}

class ResultWriters : public ::testing::Test {
 protected:
  // A Jira sink at `url` for tickets from Jira, as bot@acme.example with its token set.
  static SinkConfig jiraSink(const std::string& url) {
    SinkConfig j;
    j.name = "jira";
    j.kind = SinkKind::kJira;
    j.sources = {"jira"};
    j.url = url;
    j.username = "bot@acme.example";
    j.secret_env = "TICKETFLOW_TEST_JIRA_TOKEN";
    ::setenv("TICKETFLOW_TEST_JIRA_TOKEN", "jira-token-for-tests", 1);
    return j;
  }

  static TicketResult resultFor(const std::string& id, const std::string& system) {
    return testing::resultFor(id, system, "HELP-" + id);
  }
};

TEST_F(ResultWriters, EveryUpdateReachesEachSinkOnceDespiteRedeliveryAndRetries) {
  testing::HttpReceiver hook;
  Config config = testConfig();
  SinkConfig topic;
  topic.name = "updates";
  SinkConfig webhook;
  webhook.name = "helpdesk-hook";
  webhook.kind = SinkKind::kWebhook;
  webhook.url = hook.url() + "/hook";
  webhook.timeout_ms = 2000;
  config.results.sinks = {topic, webhook};
  local_stack::LocalStackOptions local;
  local_stack::LocalStack stack(config, local);
  hook.failNext(2, 503);  // the first two writes fail retriably
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kResults, ""}}, &log));
  run.start();
  std::vector<testing::Record> records;
  for (int i = 0; i < 20; ++i)
    records.push_back({"R-" + std::to_string(i), toJson(resultFor("R-" + std::to_string(i), "web"))});
  // Redelivered results (a tier that crashed after producing): the same (ticket, revision) again.
  for (int i = 0; i < 5; ++i) records.push_back(records[static_cast<std::size_t>(i)]);
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.results, records);
  const auto updates = readTopic(config, config.kafka.topics.updates, 20, 60s);
  std::map<std::string, int> on_topic;
  for (const auto& m : updates) ++on_topic[m.key.value_or("")];
  EXPECT_EQ(on_topic.size(), 20u);
  for (const auto& [id, n] : on_topic) EXPECT_EQ(n, 1) << id;

  std::map<std::string, int> posted;
  for (const auto& req : hook.requests()) {
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    ASSERT_TRUE(body.is_object());
    ++posted[body["ticket_id"].get<std::string>()];
  }
  EXPECT_EQ(posted.size(), 20u);
  int failed_then_retried = 0;
  for (const auto& [id, n] : posted) {
    EXPECT_LE(n, 2) << id;  // one failed attempt at most, then exactly one write
    failed_then_retried += n - 1;
  }
  EXPECT_EQ(failed_then_retried, 2);
  for (const auto& req : hook.requests()) {
    EXPECT_EQ(req.header("x-ticketflow-signature").rfind("sha256=", 0), 0u);
    EXPECT_FALSE(req.header("idempotency-key").empty());
  }
}

TEST_F(ResultWriters, ASinkThatRefusesAnUpdateDeadLettersOnlyThatWrite) {
  testing::HttpReceiver jira;
  Config config = testConfig();
  SinkConfig topic;
  topic.name = "updates";
  config.results.sinks = {topic, jiraSink(jira.url())};
  local_stack::LocalStackOptions local;
  local_stack::LocalStack stack(config, local);
  jira.failNext(1, 404);  // the issue does not exist: permanent
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kResults, ""}}, &log));
  run.start();
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.results,
                      {{"J-1", toJson(resultFor("J-1", "jira"))}, {"W-1", toJson(resultFor("W-1", "web"))}});
  const auto updates = readTopic(config, config.kafka.topics.updates, 2, 60s);
  EXPECT_EQ(updates.size(), 2u) << "the topic still gets both updates";
  const auto dlq = readTopic(config, config.kafka.topics.dlq, 1, 30s);
  ASSERT_EQ(dlq.size(), 1u);
  auto d = parseDeadLetter(dlq[0].value);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->stage, "results:jira");
  EXPECT_EQ(d->ticket_id, "J-1");
  for (const auto& req : jira.requests())
    EXPECT_EQ(req.path.find("W-1"), std::string::npos) << "jira only serves jira tickets";
}

TEST_F(ResultWriters, AWriteBegunBeforeACrashIsLookedUpNotRepeated) {
  testing::FakeJira jira("bot@acme.example", "jira-token-for-tests");
  for (const std::string id : {"J-1", "J-2", "J-3"}) jira.createIssue("HELP-" + id);
  Config config = testConfig();
  config.results.sinks = {jiraSink(jira.url())};
  local_stack::LocalStackOptions local;
  local_stack::LocalStack stack(config, local);

  // The state a result writer killed mid-write leaves: J-1 commented, then killed before its
  // "written" mark; J-2 killed after its "pending" mark, before the comment went out.
  redis::RedisPool markers(*redis::RedisPoolOptions::fromConfig(config.redis));
  auto sink = std::move(results::makeSinks(config).front().sink);
  for (const std::string id : {"J-1", "J-2"}) {
    const auto update = TicketUpdate::fromResult(resultFor(id, "jira"), "2026-11-22T10:00:02.000Z");
    if (id == "J-1") {
      ASSERT_TRUE(sink->write(update, false).ok());
    }
    auto marked = markers.command({"HSET", config.redis.key_prefix + "written:acme:" + id + ":1", "pending:jira", "x"});
    ASSERT_TRUE(marked.ok());
  }
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kResults, ""}}, &log));
  run.start();
  std::vector<testing::Record> records;
  for (const std::string id : {"J-1", "J-2", "J-3"}) records.push_back({id, toJson(resultFor(id, "jira"))});
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.results, records);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  auto allMarked = [&] {
    for (const std::string id : {"J-1", "J-2", "J-3"}) {
      auto done = markers.command({"HEXISTS", config.redis.key_prefix + "written:acme:" + id + ":1", "jira"});
      if (!done.ok() || done->integer != 1) return false;
    }
    return true;
  };
  while (!allMarked() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(allMarked()) << log.str().substr(0, 4000);
  for (const std::string id : {"J-1", "J-2", "J-3"})
    EXPECT_EQ(jira.comments("HELP-" + id).size(), 1u) << id << ": one triage comment per revision";
  EXPECT_GE(jira.requests("GET"), 2) << "J-1 and J-2 were looked up";
}

TEST_F(ResultWriters, ExactlyOnceLooksAPendingUpdateUpOnTheTopicBeforeProducingItAgain) {
  Config config = testConfig();
  config.results.exactly_once = true;
  config.results.sinks.front().timeout_ms = 1000;  // a write begun 1 s + 2 s ago has landed or never will
  local_stack::LocalStackOptions local;
  local_stack::LocalStack stack(config, local);

  // The states a writer killed around a produce leaves, each with its pending mark:
  //   U-1 produced long ago, never marked;      U-2 marked long ago, never produced;
  //   U-3 produced just now, never marked (the look-up waits until the write must have ended);
  //   U-4 marked just now, never produced;      U-5 untouched.
  redis::RedisPool markers(*redis::RedisPoolOptions::fromConfig(config.redis));
  kafka::Producer producer(config.kafka, "test");
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::vector<std::string> ids = {"U-1", "U-2", "U-3", "U-4", "U-5"};
  for (const auto& id : ids) {
    if (id == "U-5") continue;
    const auto update = TicketUpdate::fromResult(resultFor(id, "web"), "2026-11-22T10:00:02.000Z");
    const bool produced = id == "U-1" || id == "U-3";
    const auto begun_ms = (id == "U-1" || id == "U-2") ? now_ms - 60'000 : now_ms;
    const std::int32_t partition = kafka::partitionForKey(id, config.kafka.partitions);
    if (produced) {
      ASSERT_TRUE(producer
                      .produceSync(config.kafka.topics.updates, id, toJson(update),
                                   {{results::kWriteMarkerHeader, results::writeMarker(update)}})
                      .ok());
    }
    auto marked = markers.command({"HSET", config.redis.key_prefix + "written:acme:" + id + ":1", "pending:updates",
                                   std::to_string(begun_ms) + ":" + std::to_string(partition) + ":0"});
    ASSERT_TRUE(marked.ok());
  }
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kResults, ""}}, &log));
  run.start();
  std::vector<testing::Record> records;
  for (const auto& id : ids) records.push_back({id, toJson(resultFor(id, "web"))});
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.results, records);
  auto allMarked = [&] {
    for (const auto& id : ids) {
      auto done = markers.command({"HEXISTS", config.redis.key_prefix + "written:acme:" + id + ":1", "updates"});
      if (!done.ok() || done->integer != 1) return false;
    }
    return true;
  };
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       !allMarked() && std::chrono::steady_clock::now() < deadline;)
    std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(allMarked()) << log.str().substr(0, 4000);
  const auto updates = readTopic(config, config.kafka.topics.updates, ids.size() + 1, 5s);
  std::map<std::string, int> copies;
  for (const auto& m : updates) {
    ++copies[m.key.value_or("")];
    EXPECT_EQ(m.partition, kafka::partitionForKey(m.key.value_or(""), config.kafka.partitions));
    EXPECT_TRUE(m.header(results::kWriteMarkerHeader).has_value());
  }
  for (const auto& id : ids) EXPECT_EQ(copies[id], 1) << id << ": one update on the topic";
  EXPECT_EQ(updates.size(), ids.size());
}

TEST(Pipeline, AnUnsetSinkSecretStopsStartUpNamingTheField) {
  Config config = testConfig();
  SinkConfig hook;
  hook.name = "hook";
  hook.kind = SinkKind::kWebhook;
  hook.url = "http://127.0.0.1:9/hook";
  hook.secret_env = "TICKETFLOW_TEST_UNSET_SECRET";
  config.results.sinks.push_back(hook);
  ::unsetenv("TICKETFLOW_TEST_UNSET_SECRET");
  try {
    pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kResults, ""}}, nullptr));
    ADD_FAILURE() << "started without the sink's secret";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), "results.sinks[1].secret_env");
    EXPECT_NE(e.reason().find("TICKETFLOW_TEST_UNSET_SECRET"), std::string::npos);
  }
}

}  // namespace
}  // namespace ticketflow
