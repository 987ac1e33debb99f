#pragma once
// InFlightRegistry: which tickets are being answered now, findable by a near-duplicate. Intake
// registers a ticket it routes to a tier (begin) and the tier role removes it once the ticket
// has its final answer (end); a near-duplicate that arrives meanwhile (same tenant, and category
// with cache.same_category, at cache.similarity_threshold) waits for that answer to reach the
// semantic cache instead of calling a model: in-flight coalescing. It is a semantic cache of its
// own under "<prefix>inflight:", whose entries expire after cache.coalesce_wait_ms, so a ticket
// that never gets a final answer (its process died) stops holding others up. Identical copies
// handled at the same moment by two intake threads are told apart by a claim on the exact text
// (SET NX): one is answered, the other waits. Near-duplicates that differ can still both go.
//
// Resilience: Redis trouble reads as "nothing in flight" and skips registering, so a ticket is
// routed as if coalescing were off. Threading: thread-safe.

#include <memory>
#include <optional>
#include <string>

#include "ticketflow/config/config.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::redis {

class InFlightRegistry {
 public:
  InFlightRegistry(std::shared_ptr<RedisPool> pool, const CacheConfig& cache, const std::string& key_prefix,
                   std::shared_ptr<const embed::Embedder> embedder, const Clock& clock = SystemClock::instance());

  std::chrono::milliseconds maxWait() const { return max_wait_; }
  // The id of a near-duplicate ticket being answered now, other than `ticket_id`.
  std::optional<std::string> answering(const std::string& tenant, const std::string& category, const std::string& text,
                                       const std::string& ticket_id);
  // Claims the exact text for `ticket_id`: the other ticket holding it, or nothing (claimed now, or
  // held by this ticket already: a redelivery).
  std::optional<std::string> claim(const std::string& tenant, const std::string& text, const std::string& ticket_id);
  void begin(const std::string& tenant, const std::string& category, const std::string& text,
             const std::string& ticket_id);
  // Only `ticket_id`'s own registration goes (an identical copy's stays).
  void end(const std::string& tenant, const std::string& text, const std::string& ticket_id);

 private:
  static CacheConfig registryConfig(const CacheConfig& cache);
  std::string claimKey(const std::string& tenant, const std::string& text) const;
  std::shared_ptr<RedisPool> pool_;
  std::string prefix_;
  std::chrono::milliseconds max_wait_;
  SemanticCache tickets_;
};

}  // namespace ticketflow::redis
