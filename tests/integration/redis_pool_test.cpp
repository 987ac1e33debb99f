#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "fixtures/services.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow {
namespace {

class RedisPoolTest : public testing::RedisTest {
 protected:
  redis::RedisPoolOptions options(int size) const {
    redis::RedisPoolOptions o;
    o.endpoint.port = server().port();
    o.pool_size = size;
    o.command_timeout = std::chrono::seconds(2);
    o.backoff_initial = std::chrono::milliseconds(20);
    o.backoff_max = std::chrono::milliseconds(200);
    return o;
  }
};

TEST_F(RedisPoolTest, ThreadsShareAtMostPoolSizeConnections) {
  redis::RedisPool pool(options(3));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = pool.command({"INCR", key_prefix_ + "n"});
        if (!r || r->type != redis::Reply::Type::kInteger) ++failures;
      }
      (void)t;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(pool.command({"GET", key_prefix_ + "n"})->str, "1600");
  EXPECT_LE(pool.stats().connects, 3u);
}

TEST_F(RedisPoolTest, ScriptsRunByShaAndFallBackToEvalAfterAFlush) {
  redis::RedisPool pool(options(1));
  const redis::RedisScript script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  EXPECT_EQ(script.sha1().size(), 40u);
  auto first = pool.eval(script, {key_prefix_ + "s"}, {"2"});  // unknown to the server: EVAL
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->integer, 2);
  auto cached = pool.command({"SCRIPT", "EXISTS", script.sha1()});
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->elements.at(0).integer, 1);
  ASSERT_TRUE(pool.command({"SCRIPT", "FLUSH"}).ok());
  auto again = pool.eval(script, {key_prefix_ + "s"}, {"3"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->integer, 5);
  auto bad = pool.eval(redis::RedisScript("return redis.call('NOPE')"), {}, {});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->type, redis::Reply::Type::kError);
}

TEST_F(RedisPoolTest, BrokenConnectionsAreDiscardedAndTheServerIsRejoinedAfterARestart) {
  redis::RedisPool pool(options(2));
  ASSERT_TRUE(pool.command({"PING"}).ok());
  server().stop(/*crash=*/true);
  auto down = pool.command({"PING"});
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(down.error().retriable);
  // While down, connects fail and later calls fail fast inside the backoff window.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(pool.command({"PING"}).ok());
  EXPECT_GE(pool.stats().connect_failures, 1u);
  EXPECT_GE(pool.stats().discarded, 1u);
  server().restart();
  Result<redis::Reply> up = Error::unavailable("not tried");
  for (int i = 0; i < 100 && !up.ok(); ++i) {
    up = pool.command({"PING"});
    if (!up.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->str, "PONG");
}

TEST(RedisPoolConfig, OptionsComeFromTheRedisSection) {
  RedisConfig config;
  config.url = "redis://127.0.0.1:7000/2";
  config.password = "from-env";
  config.pool_size = 5;
  config.command_timeout_ms = 250;
  auto o = redis::RedisPoolOptions::fromConfig(config);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->endpoint.port, 7000);
  EXPECT_EQ(o->endpoint.db, 2);
  EXPECT_EQ(o->endpoint.password, "from-env");
  EXPECT_EQ(o->pool_size, 5);
  EXPECT_EQ(o->command_timeout, std::chrono::milliseconds(250));
  config.url = "http://nope";
  EXPECT_FALSE(redis::RedisPoolOptions::fromConfig(config).ok());
}

}  // namespace
}  // namespace ticketflow
