#include "ticketflow/stage/backpressure.hpp"

#include <algorithm>

namespace ticketflow::stage {

Backpressure::Action Backpressure::check(std::int64_t load, Time now) {
  if (paused_all_) {
    if (load > window_ - std::max<std::int64_t>(1, window_ / 16)) return Action::kPoll;
    paused_all_ = false;
    full_since_.reset();
    return Action::kResumeAll;
  }
  if (load < window_) {
    full_since_.reset();
    return Action::kPoll;
  }
  if (!full_since_) full_since_ = now;
  if (now - *full_since_ < kPauseGrace) return Action::kWait;
  paused_all_ = true;
  return Action::kPauseAll;
}

}  // namespace ticketflow::stage
