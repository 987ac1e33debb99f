#include "ticketflow/core/worker_pool.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

// Whether `condition` holds within 10 s (checked between yields: the pool has no event for it).
template <typename Condition>
bool until(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Counts what tasks did; a test waits on it (bounded, woken by each count: no polling, no sleep).
class Counter {
 public:
  // Notifies under the lock: a waiter that sees the count can end the test and destroy this
  // counter, which must not happen while the task's thread is still inside notify_all (TSan).
  void add() {
    std::lock_guard lock(mutex_);
    ++count_;
    changed_.notify_all();
  }
  int value() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  bool waitFor(int target) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return count_ >= target; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int count_ = 0;
};

TEST(WorkerPool, TasksOneAtATimeRunOnOneThread) {
  WorkerPool pool(64);
  Counter done;
  for (int i = 0; i < 200; ++i) {
    pool.submit([&] { done.add(); });
    ASSERT_TRUE(done.waitFor(i + 1));
    // The next task comes once the thread waits again (a task's end is not yet its thread's).
    ASSERT_TRUE(until([&] { return pool.idle() == 1; }));
  }
  EXPECT_EQ(pool.threads(), 1u);
}

TEST(WorkerPool, BlockedTasksGetThreadsUpToTheBoundAndTheRestWait) {
  WorkerPool pool(4);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Counter started, done;
  for (int i = 0; i < 10; ++i)
    pool.submit([&, released] {
      started.add();
      released.wait();
      done.add();
    });
  ASSERT_TRUE(started.waitFor(4));
  // The four started tasks block until released, so nothing else can start: the bound holds.
  EXPECT_EQ(pool.queued(), 6u);
  EXPECT_EQ(pool.threads(), 4u);
  EXPECT_EQ(started.value(), 4);
  release.set_value();
  EXPECT_TRUE(done.waitFor(10));
  EXPECT_EQ(pool.threads(), 4u);
}

TEST(WorkerPool, StopDropsQueuedTasksWithoutRunningThem) {
  std::atomic<int> ran{0};
  Counter started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  WorkerPool pool(1);
  pool.submit([&, released] {
    started.add();
    released.wait();
    ++ran;
  });
  pool.submit([&] { ran += 100; });
  ASSERT_TRUE(started.waitFor(1));
  // The running task ends only once stop() has begun; the queued one must not start then.
  std::thread releaser([&] {
    // stop() has begun once the pool hands its threads over to be joined.
    (void)until([&] { return pool.threads() == 0; });
    release.set_value();
  });
  pool.stop();
  releaser.join();
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace ticketflow
