// routing.targets' shared state on a real redis-server: every window of final answers is taken by
// exactly one recorder however many count at once, the thresholds are written with a
// compare-and-set, and a loop in one process serves what another wrote.
#include "ticketflow/redis/route_shares.hpp"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/services.hpp"
#include "ticketflow/config/config.hpp"

namespace ticketflow {
namespace {

class RouteSharesTest : public testing::RedisTest {
 protected:
  std::shared_ptr<redis::RedisPool> pool() {
    redis::RedisPoolOptions options;
    options.endpoint.port = server().port();
    options.pool_size = 4;
    return std::make_shared<redis::RedisPool>(options);
  }
};

TEST_F(RouteSharesTest, EveryWindowIsTakenOnceWithAllItsAnswers) {
  redis::RouteShareStore store(pool(), key_prefix_);  // a fresh prefix per test
  std::atomic<int> windows{0};
  std::atomic<std::int64_t> fast{0}, frontier{0};
  std::vector<std::thread> recorders;
  for (int r = 0; r < 4; ++r)
    recorders.emplace_back([&, r] {
      for (int i = 0; i < 250; ++i) {
        auto closed = store.recordAnswer(i % 5 == 0 ? "frontier" : "fast", r % 2 ? "Access" : "Hardware", 100, 0);
        ASSERT_TRUE(closed.ok()) << closed.error().message;
        if (!*closed) continue;
        ++windows;
        EXPECT_EQ((*closed)->total(), 100);
        fast += (*closed)->answered_by_tier["fast"];
        frontier += (*closed)->answered_by_tier["frontier"];
      }
    });
  for (auto& t : recorders) t.join();
  EXPECT_EQ(windows.load(), 10) << "1,000 answers, windows of 100";
  EXPECT_EQ(fast.load(), 800);
  EXPECT_EQ(frontier.load(), 200);
}

TEST_F(RouteSharesTest, ThresholdsAreWrittenOnlyOverTheVersionTheWriterRead) {
  redis::RouteShareStore store(pool(), key_prefix_);  // a fresh prefix per test
  auto none = store.thresholds();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value()) << "nothing adjusted yet";
  classify::RouteThresholds next;
  next.easy_below = 0.42;
  next.hard_from = 0.8;
  next.easy_below_by_category = {{"Hardware", 0.35}};
  auto first = store.storeThresholds(next, 0);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  auto stale = store.storeThresholds(next, 0);
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(*stale) << "another process wrote since version 0 was read";
  auto read = store.thresholds();
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->version, 1);
  EXPECT_NEAR((*read)->easy_below, 0.42, 1e-6);
  EXPECT_NEAR((*read)->hard_from, 0.8, 1e-6);
  EXPECT_NEAR((*read)->forCategory("Hardware").easy_below, 0.35, 1e-6);
  EXPECT_NEAR((*read)->forCategory("Access").easy_below, 0.42, 1e-6);
}

TEST_F(RouteSharesTest, ALoopAdjustsAfterAFullWindowAndAnotherProcessSeesIt) {
  Config config = loadEmbeddedConfig();
  config.routing.targets.shares = {{"fast", 0.5}, {"balanced", 0.35}, {"frontier", 0.15}};
  config.routing.targets.window = 20;
  config.routing.targets.gain = 0.5;
  redis::RouteShareLoop writer(config, pool(), key_prefix_, {}, nullptr, SystemClock::instance(),
                               std::chrono::milliseconds(0));
  redis::RouteShareLoop reader(config, pool(), key_prefix_, {}, nullptr, SystemClock::instance(),
                               std::chrono::milliseconds(0));
  const auto configured = reader.thresholdsFor("Access");
  EXPECT_EQ(configured.easy_below, config.classifier.difficulty.easy_below);
  for (int i = 0; i < 20; ++i) {
    const auto stamp = writer.enroll("acme:T-" + std::to_string(i) + ":1");
    EXPECT_TRUE(stamp.measured);
    EXPECT_EQ(stamp.version, 0);
  }
  EXPECT_FALSE(writer.enroll("acme:T-20:1").measured) << "the cohort is full";
  EXPECT_TRUE(reader.enroll("acme:T-3:1").measured) << "asked again, the same answer";
  for (int i = 0; i < 19; ++i) writer.answered("frontier", "Access", 0);
  EXPECT_EQ(reader.thresholdsFor("Access").hard_from, configured.hard_from) << "the window waits for its whole cohort";
  writer.answered("frontier", "Access", 0);
  const auto moved = reader.thresholdsFor("Access");
  EXPECT_GT(moved.hard_from, configured.hard_from) << "every answer at frontier: fewer tickets called hard";
  EXPECT_GT(moved.easy_below, configured.easy_below) << "none at fast: more called easy";
  EXPECT_EQ(writer.current().version, 1);
  EXPECT_EQ(reader.version(), 1);
  EXPECT_TRUE(reader.enroll("acme:T-20:1").measured) << "a new version, a new cohort";

  redis::RouteShareStore store(pool(), key_prefix_);
  ASSERT_TRUE(store.reset(config.classifier.difficulty).ok());
  const auto back = reader.current();
  EXPECT_EQ(back.version, 2) << "a reset is a new version: answers in flight under 1 do not count after it";
  EXPECT_EQ(back.easy_below, config.classifier.difficulty.easy_below);
}

TEST_F(RouteSharesTest, AWindowMissingAFewOfItsCohortClosesWhenTheyStopComing) {
  redis::RouteShareStore store(pool(), key_prefix_);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(store.enroll(0, "acme:T-" + std::to_string(i) + ":1", 10, std::chrono::seconds(0)).ok());
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(store.recordAnswer("fast", "Access", 10, 0).ok());
  auto early = store.enroll(0, "acme:T-10:1", 10, std::chrono::seconds(0));
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(early->measured);
  EXPECT_FALSE(early->closed.has_value()) << "8 of 10 answered: the window waits";
  ASSERT_TRUE(store.recordAnswer("balanced", "Access", 10, 0).ok());
  auto patient = store.enroll(0, "acme:T-11:1", 10, std::chrono::seconds(3600));
  ASSERT_TRUE(patient.ok());
  EXPECT_FALSE(patient->closed.has_value()) << "9 of 10, but an answer came less than an hour ago";
  auto closing = store.enroll(0, "acme:T-12:1", 10, std::chrono::seconds(0));
  ASSERT_TRUE(closing.ok());
  ASSERT_TRUE(closing->closed.has_value()) << "9 of 10 and nothing since: closed without the last";
  EXPECT_EQ(closing->closed->total(), 9);
  EXPECT_EQ(closing->closed->answered_by_tier["balanced"], 1);
}

TEST_F(RouteSharesTest, AnswersDecidedUnderOlderThresholdsAreNotCounted) {
  redis::RouteShareStore store(pool(), key_prefix_);  // a fresh prefix per test
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store.recordAnswer("fast", "Access", 10, 1).ok());
  // Version 2 starts a fresh window: the five of version 1 are gone, and later ones of 1 too.
  for (int i = 0; i < 9; ++i) {
    auto r = store.recordAnswer("frontier", "Access", 10, 2);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
  }
  for (int i = 0; i < 5; ++i) {
    auto stale = store.recordAnswer("fast", "Access", 10, 1);
    ASSERT_TRUE(stale.ok());
    EXPECT_FALSE(stale->has_value());
  }
  auto closed = store.recordAnswer("frontier", "Access", 10, 2);
  ASSERT_TRUE(closed.ok() && closed->has_value());
  EXPECT_EQ((*closed)->total(), 10);
  EXPECT_EQ((*closed)->answered_by_tier["frontier"], 10) << "only version 2's answers";
}

}  // namespace
}  // namespace ticketflow
