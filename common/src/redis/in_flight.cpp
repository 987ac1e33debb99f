#include "ticketflow/redis/in_flight.hpp"

#include "ticketflow/core/crypto.hpp"

namespace ticketflow::redis {
namespace {

// KEYS: claim. ARGV: ticket id. Deletes the claim when it is that ticket's.
const RedisScript& releaseClaimScript() {
  static const RedisScript s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
  return s;
}

}  // namespace

CacheConfig InFlightRegistry::registryConfig(const CacheConfig& cache) {
  CacheConfig c = cache;
  c.ttl_s = std::max<std::int64_t>(1, (cache.coalesce_wait_ms + 999) / 1000);
  return c;
}

InFlightRegistry::InFlightRegistry(std::shared_ptr<RedisPool> pool, const CacheConfig& cache,
                                   const std::string& key_prefix, std::shared_ptr<const embed::Embedder> embedder,
                                   const Clock& clock)
    : pool_(pool),
      prefix_(key_prefix + "inflight:"),
      max_wait_(cache.coalesce_wait_ms),
      tickets_(std::move(pool), registryConfig(cache), key_prefix + "inflight:", std::move(embedder), clock) {}

std::string InFlightRegistry::claimKey(const std::string& tenant, const std::string& text) const {
  return prefix_ + "claim:" + sha256Hex(tenant + '\x1f' + text);
}

std::optional<std::string> InFlightRegistry::claim(const std::string& tenant, const std::string& text,
                                                   const std::string& ticket_id) {
  const std::string key = claimKey(tenant, text);
  auto set =
      pool_->command({"SET", key, ticket_id, "NX", "PX", std::to_string(std::max<std::int64_t>(max_wait_.count(), 1))});
  if (!set || !set->isNil()) return std::nullopt;  // claimed now (or Redis trouble: go on unclaimed)
  auto holder = pool_->command({"GET", key});
  if (!holder || holder->isNil() || holder->str == ticket_id) return std::nullopt;
  return holder->str;
}

std::optional<std::string> InFlightRegistry::answering(const std::string& tenant, const std::string& category,
                                                       const std::string& text, const std::string& ticket_id) {
  auto hit = tickets_.lookup(tenant, category, text);
  if (!hit || hit->entry.source_ticket_id == ticket_id) return std::nullopt;  // itself, redelivered
  return hit->entry.source_ticket_id;
}

void InFlightRegistry::begin(const std::string& tenant, const std::string& category, const std::string& text,
                             const std::string& ticket_id) {
  CacheEntry entry;
  entry.source_ticket_id = ticket_id;
  entry.category = category;
  tickets_.insert(tenant, text, entry);
}

void InFlightRegistry::end(const std::string& tenant, const std::string& text, const std::string& ticket_id) {
  (void)tickets_.forget(tenant, text, ticket_id);  // Redis trouble: it expires with its TTL
  (void)pool_->eval(releaseClaimScript(), {claimKey(tenant, text)}, {ticket_id});
}

}  // namespace ticketflow::redis
