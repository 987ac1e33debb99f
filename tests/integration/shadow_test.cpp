// Shadow evaluation, the escalation verifier and the quality floor on the local stack (embedded
// broker, private redis-server, provider simulator with its competence model).
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "local_stack/local_stack.hpp"
#include "pipeline/pipeline.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;
using testing::optionsFor;
using testing::readTopic;
using testing::testConfig;

// A ticket with a known true category, routed straight to `tier` as intake would with `category`.
RoutedTicket labelled(const std::string& id, const std::string& tier, const std::string& label,
                      const std::string& text) {
  RoutedTicket r;
  r.ticket.id = id;
  r.ticket.tenant = "acme";
  r.ticket.revision = 1;
  r.ticket.subject = text.substr(0, 40);
  r.ticket.body = text + " (ticket " + id + ")";
  r.ticket.created_at = formatRfc3339(std::chrono::system_clock::now());
  r.ticket.metadata = {{"label", label}};
  r.trace_id = "0123456789abcdef0123456789abcdef";
  r.received_at = r.ticket.created_at;
  r.classification = {label, 0.9, Difficulty::kEasy, 0.2, {{label, 0.9}}};
  r.tier = tier;
  r.rule = "test";
  r.route.routed_tier = tier;
  return r;
}

const char* const kHardwareText =
    "My laptop screen flickers and the docking station does not detect the external monitor";
const char* const kAccessText = "I cannot log in to the VPN since my password expired, please reset my account access";

redis::AgreementCell cellOf(pipeline::Pipeline& run, const std::string& tier, const std::string& category) {
  auto table = run.agreement().table();
  if (!table) return {};
  return (*table)[tier][category];
}

TEST(Shadow, ASampleIsAnsweredAgainByTheReferenceChargedToItsOwnBucketAndNeverWrittenOut) {
  Config config = testConfig();
  config.cache.enabled = false;
  config.shadow.sample = 1.0;
  for (auto& t : config.tiers) t.escalate_below_confidence = t.escalate_below_agreement = 0;  // no escalation
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  std::vector<RoutedTicket> tickets;
  for (int i = 0; i < 12; ++i)
    tickets.push_back(labelled("SH-" + std::to_string(i), i % 3 == 0 ? "balanced" : "fast",
                               i % 2 ? "Hardware" : "Access", i % 2 ? kHardwareText : kAccessText));
  std::vector<Ticket> plain;
  for (const auto& t : tickets) plain.push_back(t.ticket);
  local.ticket_labels = sim::labelsOf(plain);
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor(pipeline::allRoles(config), &log));
  run.start();
  for (const auto& t : tickets)
    testing::produceAll(config.kafka.bootstrap_servers, config.kafka.tierTopic(t.tier), {{t.ticket.id, toJson(t)}});

  const auto updates = readTopic(config, config.kafka.topics.updates, tickets.size(), 60s);
  ASSERT_EQ(updates.size(), tickets.size()) << "one update per ticket: shadow answers are never written out";
  MicroUsd ticket_costs = 0;
  for (const auto& m : updates) ticket_costs += parseTicketUpdate(m.value)->cost_micro_usd;

  // Every ticket was answered below the reference, so every one is compared, once.
  std::int64_t compared = 0;
  for (int i = 0; i < 200 && compared < static_cast<std::int64_t>(tickets.size()); ++i) {
    compared = cellOf(run, "fast", "Access").both.trials + cellOf(run, "fast", "Hardware").both.trials +
               cellOf(run, "balanced", "Access").both.trials + cellOf(run, "balanced", "Hardware").both.trials;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(compared, static_cast<std::int64_t>(tickets.size()));
  EXPECT_EQ(cellOf(run, "fast", "Access").answered + cellOf(run, "fast", "Hardware").answered, 8);
  EXPECT_EQ(cellOf(run, "balanced", "Access").answered + cellOf(run, "balanced", "Hardware").answered, 4);
  auto labels = run.agreement().labels();
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->size(), tickets.size()) << "each comparison is a training label for the verifier";

  auto spend = run.ledger().show();
  ASSERT_TRUE(spend.ok());
  MicroUsd global = 0, shadow = 0;
  for (const auto& b : *spend) {
    if (b.scope == "global" && b.period == "day") global = b.settled;
    if (b.scope == "tier" && b.name == kShadowTier && b.period == "day") shadow = b.settled;
  }
  EXPECT_GT(shadow, 0) << "the reference calls are charged to tier:shadow";
  EXPECT_EQ(global, ticket_costs + shadow) << "and to the global bucket, apart from the tickets' own costs";
  EXPECT_TRUE(readTopic(config, config.kafka.topics.dlq, 0, 1s).empty());
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());
}

TEST(Shadow, TheVerifierPassesUpAnAnswerItDoubtsAndSaysSo) {
  Config config = testConfig();
  config.cache.enabled = false;
  config.tiers[0].escalate_below_confidence = 0;
  config.tiers[0].escalate_below_agreement = 0.999;  // nothing is that sure
  config.tiers[0].max_escalation_share = 0;
  config.tiers[1].escalate_below_agreement = 0;
  config.shadow.sample = 1.0;
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(
      config,
      optionsFor({{pipeline::Role::kTier, "fast"}, {pipeline::Role::kTier, "balanced"}, {pipeline::Role::kShadow, ""}},
                 &log));
  run.start();
  const RoutedTicket routed = labelled("VER-1", "fast", "Access", kAccessText);
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.tierTopic("fast"),
                      {{routed.ticket.id, toJson(routed)}});
  const auto results = readTopic(config, config.kafka.topics.results, 1, 60s);
  ASSERT_EQ(results.size(), 1u) << log.str().substr(0, 4000);
  EXPECT_TRUE(readTopic(config, config.kafka.topics.dlq, 0, 1s).empty());
  auto r = parseTicketResult(results[0].value);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tier, "balanced");
  ASSERT_EQ(r->route.moves.size(), 1u);
  EXPECT_EQ(r->route.moves[0].reason, "verifier");
  EXPECT_NE(log.str().find("ticket_escalated"), std::string::npos);
  // The doubted answer was sampled: compared as a training label, but it is no final answer.
  std::size_t labels = 0;
  for (int i = 0; i < 100 && labels < 2; ++i) {
    labels = run.agreement().labels()->size();
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(labels, 2u) << "the fast answer sent up and the balanced answer";
  EXPECT_EQ(run.agreement().labels()->front().tier == "fast" || run.agreement().labels()->back().tier == "fast", true);
  EXPECT_EQ(cellOf(run, "fast", "Access").both.trials, 0);
  EXPECT_EQ(cellOf(run, "balanced", "Access").both.trials, 1);
}

// Done-when of issue 19: a profile makes the fast model poor at Hardware; shadow evaluation finds
// it and the quality floor sends Hardware up, while the categories it is good at stay down.
TEST(Shadow, AModelPoorAtOneCategoryIsFoundAndThatCategoryRoutesUp) {
  Config config = testConfig();
  config.cache.enabled = false;
  config.shadow.sample = 0.3;
  config.shadow.quality_floor = 0.6;
  config.shadow.min_comparisons = 8;
  for (auto& t : config.tiers) t.escalate_below_confidence = t.escalate_below_agreement = 0;  // no escalation
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  std::vector<RoutedTicket> waves[4];
  std::vector<Ticket> plain;
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 60; ++i) {
      const bool hardware = i % 2 == 1;
      waves[w].push_back(labelled("Q" + std::to_string(w) + "-" + std::to_string(i), "fast",
                                  hardware ? "Hardware" : "Access", hardware ? kHardwareText : kAccessText));
      plain.push_back(waves[w].back().ticket);
    }
  }
  local.ticket_labels = sim::labelsOf(plain);
  local.adjust_simulator = testing::fastModelPoorAt("Hardware");
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kTier, "fast"},
                                             {pipeline::Role::kTier, "balanced"},
                                             {pipeline::Role::kTier, "frontier"},
                                             {pipeline::Role::kShadow, ""}},
                                            &log));
  run.start();
  std::vector<TicketResult> results;
  testing::TopicReader reader(config.kafka.bootstrap_servers, config.kafka.topics.results, config.kafka.partitions);
  for (int w = 0; w < 4; ++w) {
    for (const auto& t : waves[w])
      testing::produceAll(config.kafka.bootstrap_servers, config.kafka.tierTopic("fast"), {{t.ticket.id, toJson(t)}});
    const std::size_t want = 60 * static_cast<std::size_t>(w + 1);
    for (int i = 0; i < 120 && reader.messages().size() < want; ++i) reader.read(500ms, want);
    ASSERT_EQ(reader.messages().size(), want) << "wave " << w;
    // The shadow comparisons of the wave land, and the floor's table (read every 5 s) sees them.
    std::this_thread::sleep_for(6s);
  }
  std::map<std::string, std::map<std::string, int>> last_wave;  // category -> answering tier -> n
  int quality_floor_moves = 0;
  for (const auto& m : reader.messages()) {
    auto r = parseTicketResult(m.value);
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (r->ticket_id.rfind("Q3-", 0) == 0) ++last_wave[r->classification.category][r->tier];
    for (const auto& move : r->route.moves) quality_floor_moves += move.reason == "quality_floor";
  }
  const auto hardware = cellOf(run, "fast", "Hardware");
  const auto access = cellOf(run, "fast", "Access");
  EXPECT_GE(hardware.both.trials, 8);
  EXPECT_LT(hardware.both.upper(), 0.6) << "shadow evaluation measured the poor category";
  EXPECT_GT(access.both.estimate(), 0.6) << "and the good one";
  EXPECT_GT(quality_floor_moves, 0);
  EXPECT_LE(last_wave["Hardware"]["fast"], 15)
      << "by the last wave, Hardware goes up (the shadow sample still answered at fast)";
  EXPECT_GE(last_wave["Access"]["fast"], 25) << "Access stays with the fast tier";
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());
}

}  // namespace
}  // namespace ticketflow
