#include "ticketflow/redis/in_flight.hpp"

namespace ticketflow::redis {

CacheConfig InFlightRegistry::registryConfig(const CacheConfig& cache) {
  CacheConfig c = cache;
  c.ttl_s = std::max<std::int64_t>(1, (cache.coalesce_wait_ms + 999) / 1000);
  return c;
}

InFlightRegistry::InFlightRegistry(std::shared_ptr<RedisPool> pool, const CacheConfig& cache,
                                   const std::string& key_prefix, std::shared_ptr<const Embedder> embedder,
                                   const Clock& clock)
    : max_wait_(cache.coalesce_wait_ms),
      tickets_(std::move(pool), registryConfig(cache), key_prefix + "inflight:", std::move(embedder), clock) {}

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
}

}  // namespace ticketflow::redis
