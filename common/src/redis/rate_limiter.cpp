#include "ticketflow/redis/rate_limiter.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <random>

namespace ticketflow::redis {
namespace {

// Effective rate factor: after a penalty down to `factor` at `since`, it climbs back linearly to
// 1 over RECOVERY ms.
constexpr const char* kFactorLua = R"lua(
local function factorNow(adapt, now, recovery)
  local a = redis.call('HMGET', adapt, 'factor', 'since', 'block_until')
  local f = tonumber(a[1]) or 1
  local since = tonumber(a[2]) or now
  if f < 1 then f = math.min(1, f + (1 - f) * (now - since) / recovery) end
  return f, tonumber(a[3]) or 0
end
local function serverNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
)lua";

// KEYS: rpm tat, tpm tat, leases zset, adapt hash.
// ARGV: rpm, tpm, max_concurrency, tokens, lease id, lease ttl ms, recovery ms.
// Returns {granted 0/1, wait ms, reason, factor*1e6}.
const std::string kAcquireLua = std::string(kFactorLua) + R"lua(
local now = serverNow()
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local f, block = factorNow(KEYS[4], now, tonumber(ARGV[7]))
local fm = math.floor(f * 1000000)
if block > now then return {0, block - now, 'provider', fm} end
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local allowed = math.max(1, math.floor(maxc * f))
  if redis.call('ZCARD', KEYS[3]) >= allowed then return {0, 20, 'concurrency', fm} end
end
local newRpm, newTpm
if rpm > 0 then
  -- Burst: a tenth of a second's worth of requests (at least one).
  local interval = 60000 / (rpm * f)
  local burst = math.max(1, math.floor(rpm * f / 600))
  local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
  local over = tat - now - interval * (burst - 1)
  if over > 0 then return {0, math.ceil(over), 'rpm', fm} end
  newRpm = tat + interval
end
if tpm > 0 and tokens > 0 then
  -- Burst: a tenth of a minute's tokens; a call larger than that passes when the bucket is empty.
  local tat = math.max(tonumber(redis.call('GET', KEYS[2])) or now, now)
  local over = tat - now - 6000
  if over > 0 then return {0, math.ceil(over), 'tpm', fm} end
  newTpm = tat + tokens * 60000 / (tpm * f)
end
if newRpm then redis.call('SET', KEYS[1], string.format('%.3f', newRpm), 'PX', math.ceil(newRpm - now) + 1000) end
if newTpm then redis.call('SET', KEYS[2], string.format('%.3f', newTpm), 'PX', math.ceil(newTpm - now) + 1000) end
if maxc > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[5])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6]) * 2)
end
return {1, 0, '', fm}
)lua";

// KEYS: adapt hash. ARGV: rate_limited 0/1, block ms (-1 none), low 0/1, recovery ms.
const std::string kObserveLua = std::string(kFactorLua) + R"lua(
local now = serverNow()
local recovery = tonumber(ARGV[4])
local f, block = factorNow(KEYS[1], now, recovery)
local nf = f
-- The calls in flight when a limit is hit all get their 429 at once: one episode, one halving.
if ARGV[1] == '1' and block > now then nf = f
elseif ARGV[1] == '1' then nf = math.max(0.1, f * 0.5)
elseif ARGV[3] == '1' then nf = math.max(0.1, f * 0.8) end
if nf < f then redis.call('HSET', KEYS[1], 'factor', nf, 'since', now) end
local b = tonumber(ARGV[2])
if b >= 0 and now + b > block then redis.call('HSET', KEYS[1], 'block_until', now + b) end
redis.call('PEXPIRE', KEYS[1], recovery * 2 + math.max(b, 0))
return math.floor(nf * 1000000)
)lua";

const RedisScript& acquireScript() {
  static const RedisScript s(kAcquireLua);
  return s;
}
const RedisScript& observeScript() {
  static const RedisScript s(kObserveLua);
  return s;
}

std::string newLeaseId() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t process_tag = std::random_device{}();
  return std::to_string(process_tag) + "-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

RateLimiter::RateLimiter(std::shared_ptr<RedisPool> pool, std::string key_prefix, std::chrono::milliseconds lease_ttl)
    : pool_(std::move(pool)), prefix_(std::move(key_prefix) + "rl:"), lease_ttl_(lease_ttl) {}

std::string RateLimiter::keyFor(const ModelConfig& model, const char* what) const {
  return prefix_ + model.provider + ":" + model.name + ":" + what;
}

RedisCall RateLimiter::acquireCall(const ModelConfig& model, std::int64_t tokens, std::string& lease) const {
  const auto& l = model.limits;
  lease = l.max_concurrency > 0 ? newLeaseId() : std::string();
  return RedisCall::eval(acquireScript(),
                         {keyFor(model, "rpm"), keyFor(model, "tpm"), keyFor(model, "leases"), keyFor(model, "adapt")},
                         {std::to_string(l.rpm), std::to_string(l.tpm), std::to_string(l.max_concurrency),
                          std::to_string(std::max<std::int64_t>(0, tokens)), lease, std::to_string(lease_ttl_.count()),
                          std::to_string(kRecoveryMs)});
}

Result<RateLimitDecision> RateLimiter::decodeAcquire(const Reply& reply, const std::string& lease) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 4)
    return Error::internal("rate limiter script: " + reply.str);
  RateLimitDecision d;
  d.granted = reply.elements[0].integer == 1;
  d.wait = std::chrono::milliseconds(reply.elements[1].integer);
  d.reason = reply.elements[2].str;
  d.rate_factor = static_cast<double>(reply.elements[3].integer) / 1e6;
  if (d.granted) d.lease = lease;
  return d;
}

Result<RateLimitDecision> RateLimiter::acquire(const ModelConfig& model, std::int64_t tokens) {
  std::string lease;
  auto replies = pool_->run({acquireCall(model, tokens, lease)});
  if (!replies) return replies.error();
  return decodeAcquire(replies->front(), lease);
}

std::optional<RedisCall> RateLimiter::releaseCall(const ModelConfig& model, const std::string& lease) const {
  if (lease.empty()) return std::nullopt;
  return RedisCall::command({"ZREM", keyFor(model, "leases"), lease});
}

Status RateLimiter::release(const ModelConfig& model, const std::string& lease) {
  auto call = releaseCall(model, lease);
  if (!call) return {};
  auto reply = pool_->run({*call});
  if (!reply) return reply.error();
  return {};
}

Status RateLimiter::observe(const ModelConfig& model, const ProviderHints& hints) {
  std::int64_t block_ms = -1;
  if (hints.retry_after) block_ms = hints.retry_after->count();
  if (hints.remaining_requests && *hints.remaining_requests <= 0 && hints.reset_requests)
    block_ms = std::max(block_ms, static_cast<std::int64_t>(hints.reset_requests->count()));
  if (hints.remaining_tokens && *hints.remaining_tokens <= 0 && hints.reset_tokens)
    block_ms = std::max(block_ms, static_cast<std::int64_t>(hints.reset_tokens->count()));
  if (hints.rate_limited && block_ms < 0) block_ms = 1000;  // a bare 429: back off a second
  // Below a tenth of the provider's window left: slow down before it says 429.
  const bool low = (hints.limit_requests && hints.remaining_requests && *hints.limit_requests > 0 &&
                    *hints.remaining_requests * 10 < *hints.limit_requests) ||
                   (hints.limit_tokens && hints.remaining_tokens && *hints.limit_tokens > 0 &&
                    *hints.remaining_tokens * 10 < *hints.limit_tokens);
  if (!hints.rate_limited && !low && block_ms < 0) return {};
  auto reply = pool_->eval(
      observeScript(), {keyFor(model, "adapt")},
      {hints.rate_limited ? "1" : "0", std::to_string(block_ms), low ? "1" : "0", std::to_string(kRecoveryMs)});
  if (!reply) return reply.error();
  if (reply->type == Reply::Type::kError) return Error::internal("rate limiter script: " + reply->str);
  return {};
}

}  // namespace ticketflow::redis
