#pragma once
// TimerQueue: runs tasks after a delay on one thread of its own, so waiting (retry backoff, an
// asynchronous handler's simulated model call) never holds a worker thread. Tasks must be
// short; they run one at a time in due order. Thread-safe. The destructor stops the thread;
// tasks not yet due are destroyed without running.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace ticketflow::stage {

class TimerQueue {
 public:
  TimerQueue();
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  void schedule(std::chrono::steady_clock::duration delay, std::function<void()> task);
  // Tasks waiting to run.
  std::size_t pending() const;

 private:
  struct Timer {
    std::chrono::steady_clock::time_point due;
    std::uint64_t seq;
    std::function<void()> task;
    bool operator>(const Timer& other) const { return due != other.due ? due > other.due : seq > other.seq; }
  };
  void loop();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ticketflow::stage
