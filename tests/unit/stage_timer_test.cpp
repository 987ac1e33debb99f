#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ticketflow/stage/timer.hpp"

namespace ticketflow::stage {
namespace {

using namespace std::chrono_literals;

TEST(TimerQueue, TasksRunInDueOrderNotSubmissionOrder) {
  std::mutex mutex;
  std::vector<int> order;
  std::atomic<int> done{0};
  {
    TimerQueue timers;
    for (int i : {3, 1, 2}) {
      timers.schedule(std::chrono::milliseconds(i * 30), [&, i] {
        std::lock_guard lock(mutex);
        order.push_back(i);
        ++done;
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (done.load() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueue, PendingTasksAreDroppedWithoutRunningAtDestruction) {
  auto ran = std::make_shared<std::atomic<bool>>(false);
  std::weak_ptr<std::atomic<bool>> alive = ran;
  {
    TimerQueue timers;
    timers.schedule(1h, [ran] { ran->store(true); });
    EXPECT_EQ(timers.pending(), 1u);
    ran.reset();
  }
  EXPECT_TRUE(alive.expired()) << "the task (and what it captured) must be destroyed";
}

}  // namespace
}  // namespace ticketflow::stage
