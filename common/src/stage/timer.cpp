#include "ticketflow/stage/timer.hpp"

#include <cstdio>

namespace ticketflow::stage {
namespace {

void runGuarded(const std::function<void()>& task) {
  try {
    task();
  } catch (const std::exception& e) {  // never ends the timer thread
    std::fprintf(stderr, "timer: a task threw: %s\n", e.what());
  }
}

}  // namespace

TimerQueue::TimerQueue() : clock_(SystemClock::instance()), thread_([this] { loop(); }) {}

TimerQueue::TimerQueue(const Clock& clock) : clock_(clock) {}

TimerQueue::~TimerQueue() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TimerQueue::schedule(std::chrono::steady_clock::duration delay, std::function<void()> task) {
  bool earliest = false;
  {
    std::lock_guard lock(mutex_);
    const auto due = clock_.steadyNow() + delay;
    earliest = timers_.empty() || due < timers_.top().due;
    timers_.push({due, seq_++, std::move(task)});
  }
  if (earliest) wake_.notify_one();
}

std::size_t TimerQueue::pending() const {
  std::lock_guard lock(mutex_);
  return timers_.size();
}

std::function<void()> TimerQueue::takeDue() {
  if (timers_.empty() || clock_.steadyNow() < timers_.top().due) return {};
  // priority_queue::top is const; the task is moved out before pop, which is safe because pop
  // only compares due times and sequence numbers.
  std::function<void()> task = std::move(const_cast<Timer&>(timers_.top()).task);
  timers_.pop();
  return task;
}

std::size_t TimerQueue::runDue() {
  std::size_t ran = 0;
  while (true) {
    std::function<void()> task;
    {
      std::lock_guard lock(mutex_);
      task = takeDue();
    }
    if (!task) return ran;
    runGuarded(task);
    ++ran;
  }
}

void TimerQueue::loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (timers_.empty()) {
      wake_.wait(lock);
      continue;
    }
    std::function<void()> task = takeDue();
    if (!task) {
      // A copy: wait_until reads its deadline again after waking, and a schedule() meanwhile can
      // move the queue's storage (a use-after-free that ASan found).
      const auto due = timers_.top().due;
      wake_.wait_until(lock, due);
      continue;
    }
    lock.unlock();
    runGuarded(task);
    task = nullptr;  // what it captured goes outside the lock
    lock.lock();
  }
}

}  // namespace ticketflow::stage
