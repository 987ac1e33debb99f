#pragma once
// RateLimiter: cluster-wide limits per provider and model (requests per minute, tokens per
// minute, concurrent calls), enforced by one atomic Lua script so every replica shares them.
// Rates use GCRA (a token bucket stored as a theoretical arrival time) on the Redis server's
// clock, so the hosts' clocks never disagree; a refusal says how long to wait. Concurrency is a
// sorted set of leases that expire (a dead worker's slot comes back after lease_ttl).
//
// Adaptation: observe() feeds the provider's answer (429, retry-after, x-ratelimit-*). A 429 or
// an exhausted remaining count blocks the model for every replica until the provider's reset,
// and halves the effective rate (once per episode: 429s arriving while the block holds are the
// same event); the rate then recovers linearly to the configured one over kRecoveryMs unless new
// hints push it down again.
//
// Threading: thread-safe. Errors: Redis unavailable -> retriable kUnavailable / kTimeout: the
// caller must treat it as "not granted" (fail closed) and retry later.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

struct RateLimitDecision {
  bool granted = false;
  std::chrono::milliseconds wait{0};  // when not granted: try again after this
  std::string reason;                 // when not granted: rpm, tpm, concurrency or provider
  std::string lease;                  // when granted and the model limits concurrency: give to release()
  double rate_factor = 1.0;           // effective share of the configured rates (adaptation)
};

// What a provider told us about its limits, from the status and headers of one response (the
// model client reads them: provider::RateLimitHints).
struct ProviderHints {
  bool rate_limited = false;  // HTTP 429
  std::optional<std::chrono::milliseconds> retry_after;
  std::optional<std::int64_t> limit_requests, remaining_requests;
  std::optional<std::int64_t> limit_tokens, remaining_tokens;
  std::optional<std::chrono::milliseconds> reset_requests, reset_tokens;
};

class RateLimiter {
 public:
  static constexpr std::int64_t kRecoveryMs = 60'000;

  RateLimiter(std::shared_ptr<RedisPool> pool, std::string key_prefix,
              std::chrono::milliseconds lease_ttl = std::chrono::minutes(2));

  // Asks for one call of `model` that will use about `tokens` tokens (prompt + max output).
  Result<RateLimitDecision> acquire(const ModelConfig& model, std::int64_t tokens);
  // Returns a concurrency lease (no-op for an empty lease).
  Status release(const ModelConfig& model, const std::string& lease);
  // Adapts to what the provider said.
  Status observe(const ModelConfig& model, const ProviderHints& hints);

  // The same work as calls for RedisPool::run, to share a round trip with other components'.
  // acquireCall sets `lease` (give it to decodeAcquire); releaseCall is empty for no lease.
  RedisCall acquireCall(const ModelConfig& model, std::int64_t tokens, std::string& lease) const;
  static Result<RateLimitDecision> decodeAcquire(const Reply& reply, const std::string& lease);
  std::optional<RedisCall> releaseCall(const ModelConfig& model, const std::string& lease) const;

 private:
  std::string keyFor(const ModelConfig& model, const char* what) const;

  std::shared_ptr<RedisPool> pool_;
  std::string prefix_;
  std::chrono::milliseconds lease_ttl_;
};

}  // namespace ticketflow::redis
