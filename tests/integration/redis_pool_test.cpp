#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/services.hpp"
#include "ticketflow/redis/batcher.hpp"
#include "ticketflow/redis/embedded_server.hpp"
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

TEST_F(RedisPoolTest, TheBatcherAnswersEachCallerWithItsOwnReplies) {
  auto pool = std::make_shared<redis::RedisPool>(options(1));
  std::atomic<int> answered{0}, wrong{0};
  std::promise<void> all_submitted;
  auto submitted = all_submitted.get_future().share();
  constexpr int kThreads = 8, kPerThread = 250;
  {
    redis::CommandBatcher batcher(pool, 256);
    // The first callback holds the batcher's thread until every other request is queued, so the
    // rest share round trips of at most 256 calls.
    batcher.submit({redis::RedisCall::command({"PING"})}, [&](Result<std::vector<redis::Reply>>) {
      (void)submitted.wait_for(std::chrono::seconds(20));
      ++answered;
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const std::string key = key_prefix_ + "b:" + std::to_string(t) + ":" + std::to_string(i);
          const std::string value = "v" + std::to_string(t * 1000 + i);
          batcher.submit({redis::RedisCall::command({"SET", key, value}), redis::RedisCall::command({"GET", key})},
                         [&, value](Result<std::vector<redis::Reply>> replies) {
                           if (!replies || replies->size() != 2 || (*replies)[1].str != value) ++wrong;
                           ++answered;
                         });
        }
      });
    }
    for (auto& th : threads) th.join();
    all_submitted.set_value();
    // Leaving the scope destroys the batcher, which answers everything queued first.
  }
  EXPECT_EQ(answered, 1 + kThreads * kPerThread);
  EXPECT_EQ(wrong, 0);
}

TEST_F(RedisPoolTest, TheBatcherSendsCallsInSubmissionOrder) {
  auto pool = std::make_shared<redis::RedisPool>(options(1));
  {
    redis::CommandBatcher batcher(pool, 7);  // trips of 7 calls: the order must hold across them
    for (int i = 0; i < 100; ++i)
      for (int k = 0; k < 20; ++k) {
        const std::string key = key_prefix_ + "o" + std::to_string(k);
        batcher.submit({redis::RedisCall::command({"RPUSH", key, std::to_string(i)})}, {});
      }
  }  // destruction sends everything queued
  for (int k = 0; k < 20; ++k) {
    auto list = pool->command({"LRANGE", key_prefix_ + "o" + std::to_string(k), "0", "-1"});
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->elements.size(), 100u);
    for (int i = 0; i < 100; ++i)
      ASSERT_EQ(list->elements[static_cast<std::size_t>(i)].str, std::to_string(i)) << "key " << k;
  }
}

TEST_F(RedisPoolTest, TheBatchersRunWaitsForItsOwnReplies) {
  redis::CommandBatcher batcher(std::make_shared<redis::RedisPool>(options(1)));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        auto replies = batcher.run({redis::RedisCall::command({"INCRBY", key_prefix_ + "r" + std::to_string(t), "2"})});
        if (!replies || replies->size() != 1 || replies->front().integer != 2 * (i + 1)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0) << "each thread's counter counts only its own calls, in its own order";
}

TEST_F(RedisPoolTest, TheBatcherCountsItsRoundTripsAndReportsRedisTroubleToEveryCaller) {
  auto options_here = options(1);
  auto pool = std::make_shared<redis::RedisPool>(options_here);
  redis::CommandBatcher batcher(pool, 4);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> holding;
  batcher.submit({}, [&](Result<std::vector<redis::Reply>>) {
    holding.set_value();
    (void)released.wait_for(std::chrono::seconds(20));
  });
  ASSERT_EQ(holding.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  std::atomic<int> ok{0};
  for (int i = 0; i < 10; ++i)
    batcher.submit({redis::RedisCall::command({"INCR", key_prefix_ + "c"}),
                    redis::RedisCall::command({"INCR", key_prefix_ + "c"})},
                   [&](Result<std::vector<redis::Reply>> r) { ok += r.ok() && r->size() == 2 ? 1 : 0; });
  release.set_value();
  for (int i = 0; i < 200 && ok < 10; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ok, 10);
  EXPECT_EQ(batcher.stats().submitted, 11u);
  EXPECT_EQ(batcher.stats().round_trips, 6u) << "the held one, then 10 requests of 2 calls in trips of at most 4";
  EXPECT_EQ(pool->command({"GET", key_prefix_ + "c"})->str, "20");

  server().stop(/*crash=*/true);
  std::promise<std::string> failed;
  batcher.submit({redis::RedisCall::command({"PING"})},
                 [&](Result<std::vector<redis::Reply>> r) { failed.set_value(r.ok() ? "ok" : r.error().message); });
  auto message = failed.get_future();
  ASSERT_EQ(message.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_NE(message.get(), "ok");
  server().restart();
}

TEST_F(RedisPoolTest, WithMinReplicaAcksAWriteCountsOnlyOnceAReplicaHasIt) {
  auto o = options(1);
  o.endpoint.min_replica_acks = 1;
  o.endpoint.replica_ack_timeout = std::chrono::milliseconds(200);
  {
    redis::RedisPool alone(o);  // the suite's server has no replica
    auto r = alone.command({"SET", key_prefix_ + "durable", "1"});
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().retriable);
    EXPECT_NE(r.error().message.find("reached 0 of 1 replicas"), std::string::npos) << r.error().message;
  }
  redis::EmbeddedRedisServer replica(
      redis::EmbeddedRedisOptions{false, std::nullopt, {"--replicaof", "127.0.0.1", std::to_string(server().port())}});
  redis::RedisPool pool(o);
  Result<redis::Reply> r = Error::unavailable("not tried");
  for (int i = 0; i < 100 && !r.ok(); ++i) {  // until the replica has synced
    r = pool.command({"SET", key_prefix_ + "durable", "2"});
    if (!r.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->str, "OK") << "WAIT's own reply is not the caller's";
  redis::RedisEndpoint at_replica;
  at_replica.port = replica.port();
  auto read = redis::RedisClient::connect(at_replica, std::chrono::seconds(1), std::chrono::seconds(1));
  ASSERT_TRUE(read.ok());
  auto value = (*read)->command({"GET", key_prefix_ + "durable"});
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->str, "2") << "acknowledged means the replica has it";
  auto refused = (*read)->command({"SET", key_prefix_ + "durable", "3"});
  ASSERT_FALSE(refused.ok()) << "a replica's READONLY is an outage, not a reply";
  EXPECT_TRUE(refused.error().retriable);
  EXPECT_TRUE((*read)->broken()) << "the pool reconnects, to the primary in sentinel mode";
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
