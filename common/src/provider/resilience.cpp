#include "ticketflow/provider/resilience.hpp"

#include <algorithm>

namespace ticketflow::provider {

std::chrono::milliseconds backoffDelay(const BackoffPolicy& policy, int attempt, std::int64_t retry_after_ms,
                                       std::mt19937_64& rng) {
  const int shift = std::clamp(attempt - 1, 0, 30);
  const std::int64_t ceiling = std::min<std::int64_t>(policy.max.count(), policy.initial.count() << shift);
  const std::int64_t jittered = std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(ceiling, 0))(rng);
  return std::chrono::milliseconds(std::max(jittered, retry_after_ms));
}

const char* breakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

void CircuitBreaker::expireOld(std::chrono::steady_clock::time_point now) {
  while (!outcomes_.empty() && outcomes_.front().first <= now - policy_.window) {
    failures_ -= outcomes_.front().second ? 1 : 0;
    outcomes_.pop_front();
  }
}

bool CircuitBreaker::allow() {
  std::lock_guard lock(mutex_);
  const auto now = clock_.steadyNow();
  if (state_ == BreakerState::kOpen) {
    if (now - opened_at_ < policy_.open_for) return false;
    state_ = BreakerState::kHalfOpen;
    probes_in_flight_ = 0;
  }
  if (state_ == BreakerState::kHalfOpen) {
    if (probes_in_flight_ >= policy_.half_open_probes) return false;
    ++probes_in_flight_;
  }
  return true;
}

void CircuitBreaker::onSuccess() {
  std::lock_guard lock(mutex_);
  const auto now = clock_.steadyNow();
  if (state_ == BreakerState::kHalfOpen) {
    state_ = BreakerState::kClosed;
    outcomes_.clear();
    failures_ = 0;
    return;
  }
  outcomes_.emplace_back(now, false);
  expireOld(now);
}

void CircuitBreaker::onFailure() {
  std::lock_guard lock(mutex_);
  const auto now = clock_.steadyNow();
  if (state_ == BreakerState::kHalfOpen) {  // the probe failed: open again for a full period
    state_ = BreakerState::kOpen;
    opened_at_ = now;
    return;
  }
  outcomes_.emplace_back(now, true);
  ++failures_;
  expireOld(now);
  if (state_ == BreakerState::kClosed && failures_ >= policy_.failure_threshold &&
      static_cast<double>(failures_) >= policy_.failure_rate * static_cast<double>(outcomes_.size())) {
    state_ = BreakerState::kOpen;
    opened_at_ = now;
  }
}

BreakerState CircuitBreaker::state() {
  std::lock_guard lock(mutex_);
  return state_;
}

std::chrono::milliseconds CircuitBreaker::retryAfter() {
  std::lock_guard lock(mutex_);
  if (state_ != BreakerState::kOpen) return std::chrono::milliseconds(0);
  const auto left = policy_.open_for - (clock_.steadyNow() - opened_at_);
  return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(left));
}

}  // namespace ticketflow::provider
