#pragma once
// The failure policy's building blocks, per provider and model: exponential backoff with full
// jitter that honours a server's retry-after, and a circuit breaker. Time comes from a Clock so
// tests drive it by hand.

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>

#include "ticketflow/core/clock.hpp"

namespace ticketflow::provider {

struct BackoffPolicy {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds max{30000};
};

// Delay before retry number `attempt` (1 = the first retry): a uniform draw from
// [0, min(max, initial * 2^(attempt-1))], but never less than `retry_after` when the server set
// one (retry_after_ms < 0: none).
std::chrono::milliseconds backoffDelay(const BackoffPolicy& policy, int attempt, std::int64_t retry_after_ms,
                                       std::mt19937_64& rng);

enum class BreakerState { kClosed, kOpen, kHalfOpen };
const char* breakerStateName(BreakerState s);

// Opens when, within `window`, at least `failure_threshold` calls failed and they are at least
// `failure_rate` of the calls made: a few transient errors among hundreds of calls a second do
// not cut a healthy provider off, a provider that fails most calls is.
struct BreakerPolicy {
  int failure_threshold = 5;  // failures within `window` that can open the breaker
  std::chrono::milliseconds window{30000};
  std::chrono::milliseconds open_for{15000};  // then one probe is let through (half-open)
  int half_open_probes = 1;
  double failure_rate = 0.5;  // share of the window's calls that must have failed
};

// Thread-safe. allow() before each call; then record the outcome with onSuccess()/onFailure().
class CircuitBreaker {
 public:
  CircuitBreaker(BreakerPolicy policy, const Clock& clock) : policy_(policy), clock_(clock) {}

  // False while open (calls must not reach the provider), and for calls beyond the probes
  // allowed while half-open.
  bool allow();
  void onSuccess();
  void onFailure();
  BreakerState state();
  // While open: how long until a probe is let through; zero otherwise.
  std::chrono::milliseconds retryAfter();

 private:
  void expireOld(std::chrono::steady_clock::time_point now);

  BreakerPolicy policy_;
  const Clock& clock_;
  std::mutex mutex_;
  BreakerState state_ = BreakerState::kClosed;
  std::deque<std::pair<std::chrono::steady_clock::time_point, bool>> outcomes_;  // (when, failed) in the window
  int failures_ = 0;
  std::chrono::steady_clock::time_point opened_at_{};
  int probes_in_flight_ = 0;
};

}  // namespace ticketflow::provider
