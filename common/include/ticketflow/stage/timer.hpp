#pragma once
// TimerQueue: runs tasks after a delay on one thread of its own, so waiting (retry backoff, an
// asynchronous handler's simulated model call) never holds a worker thread. Tasks must be
// short; they run one at a time in due order. Thread-safe. The destructor stops the thread;
// tasks not yet due are destroyed without running.
//
// Given a clock instead, it has no thread: runDue() runs the tasks due by that clock, so a test
// advances a ManualClock and runs them, without sleeping.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "ticketflow/core/clock.hpp"

namespace ticketflow::stage {

class TimerQueue {
 public:
  TimerQueue();
  explicit TimerQueue(const Clock& clock);  // no thread: the caller runs runDue()
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  void schedule(std::chrono::steady_clock::duration delay, std::function<void()> task);
  // Tasks waiting to run.
  std::size_t pending() const;
  // Without a thread of its own: runs every task due by the clock now, in due order (tasks they
  // schedule run too when already due); returns how many ran.
  std::size_t runDue();

 private:
  struct Timer {
    std::chrono::steady_clock::time_point due;
    std::uint64_t seq;
    std::function<void()> task;
    bool operator>(const Timer& other) const { return due != other.due ? due > other.due : seq > other.seq; }
  };
  void loop();
  // The earliest task, when it is due by the clock now; locked by the caller.
  std::function<void()> takeDue();

  const Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ticketflow::stage
