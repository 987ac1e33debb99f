#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ticketflow/core/clock.hpp"
#include "ticketflow/stage/timer.hpp"

namespace ticketflow::stage {
namespace {

using namespace std::chrono_literals;

TEST(TimerQueue, TasksRunInDueOrderNotSubmissionOrder) {
  ManualClock clock;
  TimerQueue timers(clock);
  std::vector<int> order;
  for (int i : {3, 1, 2}) timers.schedule(std::chrono::milliseconds(i * 30), [&order, i] { order.push_back(i); });
  EXPECT_EQ(timers.runDue(), 0u) << "nothing is due before its time";
  clock.advance(30ms);
  EXPECT_EQ(timers.runDue(), 1u);
  EXPECT_EQ(order, (std::vector<int>{1}));
  clock.advance(29ms);
  EXPECT_EQ(timers.runDue(), 0u) << "the second is due at 60 ms, not 59";
  clock.advance(1h);
  EXPECT_EQ(timers.runDue(), 2u);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(TimerQueue, TasksDueAtTheSameTimeRunInSubmissionOrderAndMayScheduleMore) {
  ManualClock clock;
  TimerQueue timers(clock);
  std::vector<std::string> ran;
  timers.schedule(10ms, [&] {
    ran.push_back("a");
    timers.schedule(0ms, [&] { ran.push_back("a's follow-up"); });
    timers.schedule(1s, [&] { ran.push_back("later"); });
  });
  timers.schedule(10ms, [&] { ran.push_back("b"); });
  clock.advance(10ms);
  EXPECT_EQ(timers.runDue(), 3u);
  EXPECT_EQ(ran, (std::vector<std::string>{"a", "b", "a's follow-up"}));
  EXPECT_EQ(timers.pending(), 1u);
}

TEST(TimerQueue, ATaskThatThrowsDoesNotStopTheOthers) {
  ManualClock clock;
  TimerQueue timers(clock);
  int ran = 0;
  timers.schedule(1ms, [] { throw std::runtime_error("a task's own fault"); });
  timers.schedule(2ms, [&] { ++ran; });
  clock.advance(5ms);
  EXPECT_EQ(timers.runDue(), 2u);
  EXPECT_EQ(ran, 1);
}

TEST(TimerQueue, ItsOwnThreadRunsATaskOnceDue) {
  TimerQueue timers;  // the system clock
  std::promise<std::thread::id> ran_on;
  timers.schedule(1ms, [&] { ran_on.set_value(std::this_thread::get_id()); });
  auto ran = ran_on.get_future();
  ASSERT_EQ(ran.wait_for(10s), std::future_status::ready);
  EXPECT_NE(ran.get(), std::this_thread::get_id());
}

TEST(TimerQueue, PendingTasksAreDroppedWithoutRunningAtDestruction) {
  auto ran = std::make_shared<bool>(false);
  std::weak_ptr<bool> alive = ran;
  {
    TimerQueue timers;  // its own thread, on the system clock
    timers.schedule(1h, [ran] { *ran = true; });
    EXPECT_EQ(timers.pending(), 1u);
    ran.reset();
  }
  EXPECT_TRUE(alive.expired()) << "the task (and what it captured) must be destroyed";
}

}  // namespace
}  // namespace ticketflow::stage
