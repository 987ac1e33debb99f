#pragma once
// When the stage engine stops polling, pauses its partitions and resumes them. A full window
// first just stops polling: completions usually free room within milliseconds, and pausing costs
// a purge of the prefetched messages and a refetch. Only a window that stays full for the grace
// period pauses the partitions (so nothing is fetched while handlers are slow), and they are
// resumed once the window has drained by a sixteenth. Pure logic: the engine applies the answer.
#include <chrono>
#include <cstdint>
#include <optional>

namespace ticketflow::stage {

class Backpressure {
 public:
  using Time = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::milliseconds kPauseGrace{100};

  enum class Action {
    kPoll,       // room in the window (or paused already): poll
    kWait,       // full, within the grace period: do not poll, wait for completions
    kPauseAll,   // full past the grace period: pause every partition, then poll (for rebalances)
    kResumeAll,  // drained enough: resume the partitions paused for backpressure, then poll
  };

  explicit Backpressure(std::int64_t window) : window_(window) {}

  // `load`: messages in flight plus those consumed and not yet started.
  Action check(std::int64_t load, Time now);
  bool pausedAll() const { return paused_all_; }

 private:
  std::int64_t window_;
  bool paused_all_ = false;
  std::optional<Time> full_since_;
};

}  // namespace ticketflow::stage
