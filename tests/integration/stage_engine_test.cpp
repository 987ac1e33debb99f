// The stage engine against the embedded broker: delivery, ordering, dead letters, rebalance and
// backpressure. Crash safety (a child process killed mid-stream) is in stage_crash_test.cpp.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "fixtures/kafka_io.hpp"
#include "fixtures/services.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/stage/stage.hpp"
#include "ticketflow/stage/timer.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;
using stage::Completion;
using stage::Delivery;
using stage::OutputRecord;
using testing::KafkaTest;
using testing::Record;
using testing::TopicReader;

constexpr int kPartitions = 8;

class StageEngine : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    input_ = testing::uniqueName("stage-in");
    output_ = testing::uniqueName("stage-out");
    dlq_ = testing::uniqueName("stage-dlq");
    for (const auto& t : {input_, output_, dlq_}) ASSERT_TRUE(broker().createTopic(t, kPartitions).ok());
  }

  stage::StageOptions options(int window) const {
    stage::StageOptions o;
    o.name = "passthrough";
    o.input_topics = {input_};
    o.group = testing::uniqueName("stage-group");
    o.dlq_topic = dlq_;
    o.limits.max_in_flight = window;
    o.limits.worker_threads = 4;
    o.limits.max_attempts = 6;
    o.limits.retry_backoff_initial_ms = 5;
    o.limits.retry_backoff_max_ms = 50;
    o.limits.commit_interval_ms = 200;
    o.limits.drain_deadline_ms = 5000;
    // The embedded broker keeps a departed member until its session times out.
    o.consumer_properties = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    return o;
  }

  // `count` records over `keys` keys; the value is "<key>:<seq within key>:<n>".
  static std::vector<Record> keyedRecords(int count, int keys) {
    std::vector<Record> out;
    std::vector<int> seq(static_cast<std::size_t>(keys), 0);
    for (int n = 0; n < count; ++n) {
      const int k = n % keys;
      const std::string key = "INC-" + std::to_string(k);
      out.push_back({key, key + ":" + std::to_string(seq[static_cast<std::size_t>(k)]++) + ":" + std::to_string(n)});
    }
    return out;
  }

  static void waitUntil(const std::function<bool()>& done, std::chrono::seconds at_most) {
    const auto deadline = std::chrono::steady_clock::now() + at_most;
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  }

  std::string input_, output_, dlq_;
};

// 0.5% of messages fail permanently, chosen by their number so the test knows which.
bool failsPermanently(const std::string& value) {
  const int n = std::stoi(value.substr(value.rfind(':') + 1));
  return n % 200 == 7;
}

TEST_F(StageEngine, EveryMessageArrivesOnceDownstreamOrInTheDeadLetterTopicInKeyOrder) {
  constexpr int kCount = 20000;
  const auto records = keyedRecords(kCount, 500);
  testing::produceAll(broker().bootstrapServers(), input_, records);

  stage::TimerQueue timers;
  std::atomic<int> transient_failures{0};
  const std::string out_topic = output_;
  auto handler = [&](const std::shared_ptr<const Delivery>& d, Completion done) {
    thread_local std::mt19937 rng(std::random_device{}());
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 20)(rng));
    const bool transient = std::uniform_int_distribution<int>(0, 99)(rng) < 5;
    timers.schedule(delay, [d, done, transient, out_topic, &transient_failures] {
      if (failsPermanently(d->message.value)) return done.fail(Error::malformed("not a ticket"));
      if (transient) {
        ++transient_failures;
        return done.fail(Error::unavailable("model provider 503"));
      }
      done.succeed({OutputRecord{out_topic, "", d->message.value, {}}});
    });
  };
  stage::Stage engine(kafka_, options(1024), handler);
  std::thread runner([&] { EXPECT_TRUE(engine.run().ok()); });
  waitUntil([&] { auto s = engine.stats(); return s.succeeded + s.dead_lettered >= kCount; }, 80s);
  engine.requestStop();
  runner.join();
  const auto stats = engine.stats();
  std::printf("succeeded %lld, dead-lettered %lld, retries %lld, max in flight %lld, commits %lld\n",
              static_cast<long long>(stats.succeeded), static_cast<long long>(stats.dead_lettered),
              static_cast<long long>(stats.retries), static_cast<long long>(stats.max_in_flight_seen),
              static_cast<long long>(stats.commits));
  EXPECT_GT(transient_failures.load(), 0);
  EXPECT_LE(stats.max_in_flight_seen, 1024);

  TopicReader out(broker().bootstrapServers(), output_, kPartitions);
  out.read(20s, static_cast<std::size_t>(stats.succeeded));
  out.read(500ms);  // anything beyond would be a duplicate
  TopicReader dlq(broker().bootstrapServers(), dlq_, kPartitions);
  dlq.read(20s, static_cast<std::size_t>(stats.dead_lettered));
  dlq.read(500ms);

  std::map<std::string, int> seen;
  std::map<std::string, std::vector<std::pair<std::pair<int, std::int64_t>, int>>> by_key;  // (partition, offset), seq
  for (const auto& m : out.messages()) {
    ++seen[m.value];
    EXPECT_EQ(m.key, m.value.substr(0, m.value.find(':')));
    EXPECT_TRUE(m.header(stage::kAttemptHeader).has_value());
    const auto first = m.value.find(':');
    const int seq = std::stoi(m.value.substr(first + 1, m.value.rfind(':') - first - 1));
    by_key[*m.key].push_back({{m.partition, m.offset}, seq});
  }
  int permanent_in_dlq = 0;
  for (const auto& m : dlq.messages()) {
    auto letter = parseDeadLetter(m.value);
    ASSERT_TRUE(letter.ok()) << letter.error().message;
    ++seen[letter->payload];
    EXPECT_EQ(letter->stage, "passthrough");
    EXPECT_EQ(letter->topic, input_);
    EXPECT_EQ(m.header(stage::kStageHeader), "passthrough");
    EXPECT_TRUE(m.header(stage::kErrorClassHeader).has_value());
    EXPECT_EQ(m.header(stage::kAttemptsHeader), std::to_string(letter->attempts));
    if (failsPermanently(letter->payload)) {
      ++permanent_in_dlq;
      EXPECT_EQ(letter->error_class, ErrorCode::kMalformed);
    }
  }
  int missing = 0, duplicated = 0;
  for (const auto& r : records) {
    const int n = seen.count(r.value) ? seen[r.value] : 0;
    if (n == 0) ++missing;
    if (n > 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(permanent_in_dlq, kCount / 200);
  for (auto& [key, outputs] : by_key) {
    std::sort(outputs.begin(), outputs.end());
    for (std::size_t i = 1; i < outputs.size(); ++i)
      ASSERT_LT(outputs[i - 1].second, outputs[i].second) << "order broken for " << key;
  }
}

}  // namespace
}  // namespace ticketflow
