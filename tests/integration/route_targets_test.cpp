// routing.targets on the local stack (embedded broker, private redis-server, provider simulator
// with its competence model): the fast model is made poor at one category; shadow evaluation finds
// it and that category goes up, and the difficulty thresholds move until every tier answers its
// target share again.
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "local_stack/local_stack.hpp"
#include "pipeline/pipeline.hpp"
#include "ticketflow/redis/route_shares.hpp"
#include "tier/tier_service.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;
using testing::optionsFor;
using testing::testConfig;

const char* const kHardwareText =
    "My laptop screen flickers and the docking station does not detect the external monitor";
const char* const kAccessText = "I cannot log in to the VPN since my password expired, please reset my account access";

constexpr int kWaves = 12;
constexpr int kPerWave = 200;

// Ticket i of a wave: its difficulty score runs over [0, 1) once per wave (in a shuffled order),
// 30% are Hardware; routed by difficulty under the configured thresholds, as intake would.
RoutedTicket waveTicket(const Config& config, int wave, int i) {
  const bool hardware = i % 10 < 3;
  const std::string label = hardware ? "Hardware" : "Access";
  const double score = ((i * 37) % kPerWave + 0.5) / kPerWave;
  RoutedTicket r;
  r.ticket.id = "RT" + std::to_string(wave) + "-" + std::to_string(i);
  r.ticket.tenant = "acme";
  r.ticket.revision = 1;
  r.ticket.subject = label + " ticket";
  r.ticket.body = std::string(hardware ? kHardwareText : kAccessText) + " (ticket " + r.ticket.id + ")";
  r.ticket.created_at = formatRfc3339(std::chrono::system_clock::now());
  r.ticket.metadata = {{"label", label}};
  r.trace_id = "0123456789abcdef0123456789abcdef";
  r.received_at = r.ticket.created_at;
  const auto level =
      classify::levelFor(score, {config.classifier.difficulty.easy_below, config.classifier.difficulty.hard_from});
  r.classification = {label, 0.9, level, score, {{label, 0.9}}};
  r.tier = level == Difficulty::kEasy   ? config.routing.easy_tier
           : level == Difficulty::kHard ? config.routing.hard_tier
                                        : config.routing.medium_tier;
  r.rule = "difficulty";
  r.route.routed_tier = r.tier;
  return r;
}

TEST(RouteTargets, AModelPoorAtOneCategoryIsRoutedAroundAndTheTierSharesReturnToTheirTargets) {
  Config config = testConfig();
  config.cache.enabled = false;
  for (auto& t : config.tiers) t.escalate_below_confidence = t.escalate_below_agreement = 0;  // difficulty alone
  config.shadow.sample_by_category = {{"Hardware", 0.5}};
  config.shadow.quality_floor = 0.6;
  config.shadow.min_comparisons = 10;
  config.routing.targets.shares = {{"fast", 0.50}, {"balanced", 0.35}, {"frontier", 0.15}};
  config.routing.targets.window = kPerWave;
  config.routing.targets.gain = 0.6;
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  std::map<std::string, RoutedTicket> sent;
  std::vector<Ticket> plain;
  for (int w = 0; w < kWaves; ++w)
    for (int i = 0; i < kPerWave; ++i) {
      auto t = waveTicket(config, w, i);
      plain.push_back(t.ticket);
      sent.emplace(t.ticket.id, std::move(t));
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
  testing::TopicReader reader(config.kafka.bootstrap_servers, config.kafka.topics.results, config.kafka.partitions);
  for (int w = 0; w < kWaves; ++w) {
    for (int i = 0; i < kPerWave; ++i) {
      const auto& t = sent.at("RT" + std::to_string(w) + "-" + std::to_string(i));
      testing::produceAll(config.kafka.bootstrap_servers, config.kafka.tierTopic(t.tier), {{t.ticket.id, toJson(t)}});
    }
    const std::size_t want = kPerWave * static_cast<std::size_t>(w + 1);
    for (int i = 0; i < 120 && reader.messages().size() < want; ++i) reader.read(500ms, want);
    ASSERT_EQ(reader.messages().size(), want) << "wave " << w << "\n" << log.str().substr(0, 4000);
    std::this_thread::sleep_for(2s);  // the wave's shadow comparisons land
  }

  std::map<int, std::map<std::string, int>> tiers_by_wave;  // wave -> answering tier -> n
  std::map<int, int> hardware_at_fast_unsampled;            // wave -> Hardware answered at fast outside the sample
  int share_moves = 0, floor_moves = 0;
  for (const auto& m : reader.messages()) {
    auto r = parseTicketResult(m.value);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const int wave = std::stoi(r->ticket_id.substr(2, r->ticket_id.find('-') - 2));
    ++tiers_by_wave[wave][r->tier];
    if (r->classification.category == "Hardware" && r->tier == "fast" &&
        !tier::sampledForShadow(config.shadow, sent.at(r->ticket_id), "fast"))
      ++hardware_at_fast_unsampled[wave];
    for (const auto& move : r->route.moves) {
      share_moves += move.reason == "share_target";
      floor_moves += move.reason == "quality_floor";
    }
  }
  std::ostringstream shares;
  for (const auto& [wave, tiers] : tiers_by_wave) {
    shares << "wave " << wave << ":";
    for (const auto& [tier, n] : tiers) shares << " " << tier << " " << n;
    shares << " (Hardware at fast, unsampled: " << hardware_at_fast_unsampled[wave] << ")\n";
  }
  std::cout << shares.str();  // the loop's course, for the log
  EXPECT_GT(floor_moves, 0) << shares.str();
  EXPECT_GT(share_moves, 0) << "tickets moved on arrival under the new thresholds\n" << shares.str();
  for (int w = 4; w < kWaves; ++w)
    EXPECT_EQ(hardware_at_fast_unsampled[w], 0) << "by the 5th wave Hardware goes up (but for the shadow sample)\n"
                                                << shares.str();
  // The last three waves' shares, against the targets.
  std::map<std::string, int> last;
  for (int w = kWaves - 3; w < kWaves; ++w)
    for (const auto& [tier, n] : tiers_by_wave[w]) last[tier] += n;
  const double n = 3.0 * kPerWave;
  for (const auto& [tier, target] : config.routing.targets.shares)
    EXPECT_NEAR(last[tier] / n, target, 0.02) << tier << "\n" << shares.str();

  auto options = redis::RedisPoolOptions::fromConfig(config.redis);
  ASSERT_TRUE(options.ok());
  redis::RouteShareStore store(std::make_shared<redis::RedisPool>(*options), config.redis.key_prefix);
  auto thresholds = store.thresholds();
  ASSERT_TRUE(thresholds.ok() && thresholds->has_value());
  EXPECT_GT((*thresholds)->forCategory("Access").easy_below, (*thresholds)->forCategory("Hardware").easy_below)
      << "Access carries the fast tier's share; Hardware's threshold stays where it was when fast closed to it";
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());
}

}  // namespace
}  // namespace ticketflow
