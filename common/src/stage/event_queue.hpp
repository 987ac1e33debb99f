#pragma once
// The only channel into the stage's poll thread: handler answers, delivery reports, retry and
// probe timers all arrive here as events, so the poll thread's bookkeeping needs no locks.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "ticketflow/core/result.hpp"
#include "ticketflow/stage/stage.hpp"

namespace ticketflow::stage {

enum class EventKind { kHandlerDone, kProduced, kRetryDue, kAfterAckDone, kProbeDue };

struct Event {
  EventKind kind = EventKind::kHandlerDone;
  std::uint64_t item = 0;
  int run = 0;  // kHandlerDone: which run of the item answered (a held message runs again)
  std::vector<OutputRecord> outputs;
  std::function<void()> after_ack;
  std::optional<Error> error;
};

// push() wakes a poll blocked in librdkafka (through the wake function), so completions are
// handled at once rather than after the poll timeout.
class EventQueue {
 public:
  void push(Event event) {
    std::lock_guard lock(mutex_);
    const bool was_empty = events_.empty();
    events_.push_back(std::move(event));
    if (was_empty) {
      ready_.notify_one();
      if (wake_) wake_();
    }
  }
  std::vector<Event> take() {
    std::lock_guard lock(mutex_);
    std::vector<Event> out;
    out.swap(events_);
    return out;
  }
  bool empty() const {
    std::lock_guard lock(mutex_);
    return events_.empty();
  }
  void waitFor(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, timeout, [this] { return !events_.empty(); });
  }
  // Cleared before the consumer goes: a handler may answer after the stage is gone.
  void setWake(std::function<void()> wake) {
    std::lock_guard lock(mutex_);
    wake_ = std::move(wake);
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Event> events_;
  std::function<void()> wake_;
};

}  // namespace ticketflow::stage
