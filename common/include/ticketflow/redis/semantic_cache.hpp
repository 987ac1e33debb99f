#pragma once
// SemanticCache: answers a near-duplicate ticket of the same tenant without a model call.
//
// Lookup: an exact-match fast path on a hash of the normalised text; then candidates from
// locality-sensitive hashing (random-hyperplane signatures split into bands; each band bucket
// is a Redis list per tenant holding its newest kBucketCapacity entry ids), ranked by how many
// bands they share, the best 32 reranked by exact cosine over the stored vectors (int8, fetched
// in one MGET). A hit needs cosine >= cache.similarity_threshold, the same tenant (the tenant is
// part of every key, so another tenant's entries are never even read) and, with
// cache.same_category, the same category.
// Entries expire after cache.ttl_s.
//
// Resilience: Redis down or slow makes lookup() a miss and insert() a no-op, both counted as
// skipped; the cache never fails a ticket. Threading: thread-safe.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/embed/embedder.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

struct CacheEntry {
  std::string answer_json;  // the result fields needed to answer the ticket, as JSON
  std::string model;
  std::string tier;
  MicroUsd cost_micro_usd = 0;  // what the original call cost (saved by each hit)
  std::string source_ticket_id;
  std::string category;
  std::chrono::system_clock::time_point created{};
};

struct CacheHit {
  CacheEntry entry;
  double similarity = 0;  // 1 for an exact match
  bool exact = false;
};

// The nearest entry found, whatever its similarity (for `cache eval` and diagnostics).
struct CacheProbe {
  std::optional<CacheHit> best;
  std::size_t candidates = 0;  // vectors compared
};

struct CacheCounters {
  std::uint64_t lookups = 0, exact_hits = 0, semantic_hits = 0, misses = 0, skipped = 0;
  std::uint64_t inserts = 0, insert_skipped = 0;
};

struct CachePurgeFilter {
  std::optional<std::string> tenant;  // all tenants when absent
  std::optional<std::string> category;
  std::optional<std::chrono::seconds> older_than;
};

struct CacheTenantStats {
  std::string tenant;
  std::int64_t entries = 0;
  std::chrono::system_clock::time_point oldest{}, newest{};
};

struct CacheStats {
  std::vector<CacheTenantStats> tenants;
  std::string used_memory;  // Redis INFO used_memory_human
};

class SemanticCache {
 public:
  // A band bucket is a Redis list of entry ids, newest first, trimmed to this many on insert: a
  // lookup reads every bucket whole (LRANGE, a sequential read of a compact listpack) whatever
  // the cache size. A crowded bucket (text that looks like very many others) forgets its oldest
  // members; they stay findable through their other bands. (Sampling sets instead,
  // SRANDMEMBER 64, cost 600 us of redis-server time per lookup at 1M entries.) 128 rather than
  // 64: at 1M entries `bench cache` found 2,171 instead of 1,826 of 2,500 near-duplicates of
  // uniformly chosen entries, at p99 1.58 instead of 1.35 ms (docs/semantic-cache.md).
  static constexpr int kBucketCapacity = 128;

  SemanticCache(std::shared_ptr<RedisPool> pool, const CacheConfig& config, std::string key_prefix,
                std::shared_ptr<const embed::Embedder> embedder, const Clock& clock = SystemClock::instance());

  // A hit or nothing. `category` is the ticket's predicted category (checked when
  // cache.same_category is on). Redis trouble: nothing, counted as skipped (and *skipped set).
  std::optional<CacheHit> lookup(const std::string& tenant, const std::string& category, const std::string& text,
                                 bool* skipped = nullptr);
  // Stores an entry for `text`. Redis trouble: skipped (counted), no error.
  void insert(const std::string& tenant, const std::string& text, const CacheEntry& entry);

  // The nearest entry of the tenant (any category when `category` is empty), with its
  // similarity, if at least `min_similarity`; errors are returned, not swallowed.
  Result<CacheProbe> probe(const std::string& tenant, const std::string& category, const std::string& text,
                           double min_similarity = -1.0);
  Status store(const std::string& tenant, const std::string& text, const CacheEntry& entry);

  // Deletes the newest entry stored for exactly `text` (normalised) of `tenant` when it came from
  // `source_ticket_id`; true when there was one.
  Result<bool> forget(const std::string& tenant, const std::string& text, const std::string& source_ticket_id);
  // Deletes matching entries; returns how many.
  Result<std::int64_t> purge(const CachePurgeFilter& filter);
  Result<CacheStats> stats();
  CacheCounters counters() const;

 private:
  struct Signature {
    std::vector<std::uint64_t> bits;  // the band's rows as bits
  };
  std::string bandKey(const std::string& tenant_prefix, std::size_t band, std::uint64_t bits) const;
  std::size_t bandBytes() const;
  Signature signature(const std::vector<float>& v) const;
  std::string tenantPrefix(const std::string& tenant) const;
  Result<std::vector<std::string>> tenants();
  Result<std::int64_t> deleteEntries(const std::string& tenant, const std::vector<std::string>& ids);

  std::shared_ptr<RedisPool> pool_;
  CacheConfig config_;
  std::string prefix_;
  std::shared_ptr<const embed::Embedder> embedder_;
  const Clock& clock_;
  std::vector<float> planes_;  // bands*rows hyperplanes of +-1, dimension-major

  std::atomic<std::uint64_t> lookups_{0}, exact_hits_{0}, semantic_hits_{0}, misses_{0}, skipped_{0};
  std::atomic<std::uint64_t> inserts_{0}, insert_skipped_{0};
};

// int8 vector codec used for stored vectors: 4-byte float scale then one byte per dimension.
std::string encodeVector(const std::vector<float>& v);
std::vector<float> decodeVector(const std::string& bytes);

}  // namespace ticketflow::redis
