#include "ticketflow/stage/timer.hpp"

#include <cstdio>

namespace ticketflow::stage {

TimerQueue::TimerQueue() : thread_([this] { loop(); }) {}

TimerQueue::~TimerQueue() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void TimerQueue::schedule(std::chrono::steady_clock::duration delay, std::function<void()> task) {
  bool earliest = false;
  {
    std::lock_guard lock(mutex_);
    const auto due = std::chrono::steady_clock::now() + delay;
    earliest = timers_.empty() || due < timers_.top().due;
    timers_.push({due, seq_++, std::move(task)});
  }
  if (earliest) wake_.notify_one();
}

std::size_t TimerQueue::pending() const {
  std::lock_guard lock(mutex_);
  return timers_.size();
}

void TimerQueue::loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (timers_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto due = timers_.top().due;
    if (std::chrono::steady_clock::now() < due) {
      wake_.wait_until(lock, due);
      continue;
    }
    // priority_queue::top is const; the task is moved out before pop, which is safe because
    // pop only compares due times and sequence numbers.
    std::function<void()> task = std::move(const_cast<Timer&>(timers_.top()).task);
    timers_.pop();
    lock.unlock();
    try {
      task();
    } catch (const std::exception& e) {  // never ends the timer thread
      std::fprintf(stderr, "timer: a task threw: %s\n", e.what());
    }
    lock.lock();
  }
}

}  // namespace ticketflow::stage
