#include "ticketflow/core/worker_pool.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) until `done` reaches `target`.
bool waitFor(const std::atomic<int>& done, int target) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (done.load() < target && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  return done.load() >= target;
}

TEST(WorkerPool, TasksOneAtATimeRunOnOneThread) {
  WorkerPool pool(64);
  std::atomic<int> done{0};
  for (int i = 0; i < 200; ++i) {
    pool.submit([&] { ++done; });
    ASSERT_TRUE(waitFor(done, i + 1));
  }
  EXPECT_EQ(pool.threads(), 1u);
}

TEST(WorkerPool, BlockedTasksGetThreadsUpToTheBoundAndTheRestWait) {
  WorkerPool pool(4);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0}, done{0};
  for (int i = 0; i < 10; ++i)
    pool.submit([&, released] {
      ++started;
      released.wait();
      ++done;
    });
  ASSERT_TRUE(waitFor(started, 4));
  // The four started tasks block until released, so nothing else can start: the bound holds.
  EXPECT_EQ(pool.queued(), 6u);
  EXPECT_EQ(pool.threads(), 4u);
  EXPECT_EQ(started.load(), 4);
  release.set_value();
  EXPECT_TRUE(waitFor(done, 10));
  EXPECT_EQ(pool.threads(), 4u);
}

TEST(WorkerPool, StopDropsQueuedTasksWithoutRunningThem) {
  std::atomic<int> ran{0}, started{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  WorkerPool pool(1);
  pool.submit([&, released] {
    ++started;
    released.wait();
    ++ran;
  });
  pool.submit([&] { ran += 100; });
  ASSERT_TRUE(waitFor(started, 1));
  // The running task ends only once stop() has begun; the queued one must not start then.
  std::thread releaser([&] {
    // stop() has begun once the pool hands its threads over to be joined.
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         pool.threads() != 0 && std::chrono::steady_clock::now() < deadline;)
      std::this_thread::yield();
    release.set_value();
  });
  pool.stop();
  releaser.join();
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace ticketflow
