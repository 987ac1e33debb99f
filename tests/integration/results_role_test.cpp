// The result writer's role against a fake markers store (no Redis), on the embedded broker: what
// it does when its markers are down, and with marks a crashed writer left behind. The same role
// against real Redis is in pipeline_test.cpp (ResultWriters) and the chaos tests.
#include "results/results_role.hpp"

#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/pipeline_run.hpp"
#include "fixtures/services.hpp"
#include "fixtures/written_markers_fake.hpp"
#include "ticketflow/stage/stage.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

class ResultsRoleOnFakeMarkers : public testing::KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    config_ = testing::testConfig();
    config_.kafka = kafka_;
    config_.results.sinks = ResultsConfig::updatesTopicOnly();
  }

  // Runs the role on a stage until stop() (or the fixture's end).
  void start() {
    auto markers = std::make_unique<testing::WrittenMarkersFake>();
    markers_ = markers.get();
    role_ = std::make_unique<results::ResultsRole>(config_, results::makeSinks(config_), std::move(markers));
    stage::StageOptions o;
    o.name = "results";
    o.input_topics = {config_.kafka.topics.results};
    o.group = config_.kafka.consumer_groups.results;
    o.dlq_topic = config_.kafka.topics.dlq;
    o.limits = config_.stage;
    o.limits.outage_probe_max_ms = 200;
    o.handler_hands_off = true;
    o.log = [](const std::string&) {};
    stage_ = std::make_unique<stage::Stage>(config_.kafka, o, role_->handler());
    runner_ = std::thread([this] { (void)stage_->run(); });
  }

  void TearDown() override {
    if (stage_) stage_->requestStop();
    if (runner_.joinable()) runner_.join();
    stage_.reset();
    role_.reset();
  }

  void produceResults(const std::vector<std::string>& ids) {
    std::vector<testing::Record> records;
    for (const auto& id : ids) records.push_back({id, toJson(testing::resultFor(id, "web", "HELP-" + id))});
    testing::produceAll(config_.kafka.bootstrap_servers, config_.kafka.topics.results, records);
  }

  std::string keyOf(const std::string& id) const { return markers_->keyFor("acme", id, 1); }

  bool allMarked(const std::vector<std::string>& ids) const {
    for (const auto& id : ids)
      if (!markers_->marks(keyOf(id)).contains("updates")) return false;
    return true;
  }

  static void waitUntil(const std::function<bool()>& done, std::chrono::seconds at_most) {
    for (auto deadline = std::chrono::steady_clock::now() + at_most;
         !done() && std::chrono::steady_clock::now() < deadline;)
      std::this_thread::sleep_for(50ms);
  }

  // Reads until `expected` updates arrived (or `limit`), then a little longer for any extra.
  std::map<std::string, int> updatesOnTopic(std::size_t expected, std::chrono::seconds limit = 10s) const {
    std::map<std::string, int> copies;
    for (const auto& m : testing::readTopic(config_, config_.kafka.topics.updates, expected, limit))
      ++copies[m.key.value_or("")];
    return copies;
  }

  Config config_;
  testing::WrittenMarkersFake* markers_ = nullptr;
  std::unique_ptr<results::ResultsRole> role_;
  std::unique_ptr<stage::Stage> stage_;
  std::thread runner_;
};

TEST_F(ResultsRoleOnFakeMarkers, UpdatesWaitWhileTheMarkersAreDownAndGoOutOnceWhenTheyAreBack) {
  const std::vector<std::string> ids = {"M-1", "M-2", "M-3", "M-4", "M-5"};
  start();
  markers_->setDown(true);
  produceResults(ids);
  // Held, not written blind: the markers are tried (the hold's probes) and nothing is produced.
  waitUntil([&] { return markers_->callsWhileDown() >= 8; }, 30s);
  EXPECT_GE(markers_->callsWhileDown(), 8);
  EXPECT_TRUE(updatesOnTopic(1, 1s).empty());
  const stage::StageStats held = stage_->stats();
  EXPECT_EQ(held.dead_lettered, 0);
  EXPECT_EQ(held.retries, 0) << "an outage uses no attempt";

  markers_->setDown(false);
  waitUntil([&] { return allMarked(ids); }, 30s);
  ASSERT_TRUE(allMarked(ids));
  const auto copies = updatesOnTopic(ids.size());
  for (const auto& id : ids) EXPECT_EQ(copies.count(id) ? copies.at(id) : 0, 1) << id;
  EXPECT_EQ(copies.size(), ids.size());
  EXPECT_EQ(stage_->stats().dead_lettered, 0);
}

TEST_F(ResultsRoleOnFakeMarkers, ASinkTheMarkersCallWrittenIsNotWrittenAgain) {
  const std::vector<std::string> ids = {"W-1", "W-2", "W-3", "W-4"};
  start();
  // A writer that crashed after W-1 and W-2 reached the topic and were marked.
  markers_->seed(keyOf("W-1"), "updates", "2026-11-22T10:00:02.000Z");
  markers_->seed(keyOf("W-2"), "updates", "2026-11-22T10:00:02.000Z");
  produceResults(ids);
  waitUntil([&] { return allMarked(ids) && stage_->stats().succeeded >= 4; }, 30s);
  ASSERT_TRUE(allMarked(ids));
  const auto copies = updatesOnTopic(2);
  EXPECT_EQ(copies.count("W-1"), 0u);
  EXPECT_EQ(copies.count("W-2"), 0u);
  EXPECT_EQ(copies.count("W-3") ? copies.at("W-3") : 0, 1);
  EXPECT_EQ(copies.count("W-4") ? copies.at("W-4") : 0, 1);
  // The seeded marks are kept as they were, not rewritten.
  EXPECT_EQ(markers_->marks(keyOf("W-1")).at("updates"), "2026-11-22T10:00:02.000Z");
}

}  // namespace
}  // namespace ticketflow
