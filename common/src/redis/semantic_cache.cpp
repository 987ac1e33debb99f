#include "ticketflow/redis/semantic_cache.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <random>

namespace ticketflow::redis {
namespace {

// Candidates reranked per lookup: those sharing the most bands with the query. 32, not 64:
// the same hits on the it-tickets dev stream and 1% fewer near-duplicates found at 1M entries
// (2,171 instead of 2,193 of 2,500), for half the vector reads (each a few cache-missing memory
// accesses in redis-server).
constexpr std::size_t kMaxCandidates = 32;
// Expired entries are removed by the inserting process, a bounded batch every this many inserts.
constexpr std::uint64_t kExpireEvery = 256;
constexpr std::int64_t kExpireBatch = 500;
// Keys also carry a Redis TTL a day past the entry TTL, so an idle tenant's keys disappear.
constexpr std::int64_t kBackstopExtraMs = 86'400'000;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string hex64(std::uint64_t v, int digits = 16) {
  static const char* kHex = "0123456789abcdef";
  std::string s(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kHex[v & 0xf];
  return s;
}

// Tenant names are restricted by the ticket schema; anything else is escaped so no tenant can
// spell another tenant's key.
std::string keySafe(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-')
      out.push_back(static_cast<char>(c));
    else
      out.append(1, '%').append(hex64(c, 2));
  }
  return out;
}

// Integer ids: Redis keeps small lists of integers as compact listpacks (at most 9 bytes a member).
std::string newEntryId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() >> 1);
}

// 128 bits of the normalised text: the exact-match key.
std::string exactHash(const std::string& norm) {
  return hex64(embed::cacheHash64(norm)) + hex64(embed::cacheHash64(norm, 0x84222325cbf29ce4ULL));
}

std::int64_t toInt(const Reply& r) {
  if (r.type == Reply::Type::kInteger) return r.integer;
  if (r.str.empty()) return 0;
  try {
    return std::stoll(r.str);
  } catch (const std::exception&) {
    return 0;
  }
}

Error unexpected(const Reply& r) {
  return r.type == Reply::Type::kError ? Error::unavailable("Redis: " + r.str)
                                       : Error::internal("unexpected Redis reply");
}

const std::vector<std::string> kEntryFields = {"a", "m", "r", "c", "s", "k", "t"};

CacheEntry entryFrom(const std::vector<Reply>& v) {
  CacheEntry e;
  e.answer_json = v[0].str;
  e.model = v[1].str;
  e.tier = v[2].str;
  e.cost_micro_usd = toInt(v[3]);
  e.source_ticket_id = v[4].str;
  e.category = v[5].str;
  e.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(toInt(v[6])));
  return e;
}

}  // namespace

std::string encodeVector(const std::vector<float>& v) {
  float max_abs = 0;
  for (float x : v) max_abs = std::max(max_abs, std::fabs(x));
  const float scale = max_abs > 0 ? max_abs / 127.0f : 1.0f;
  std::string out(sizeof(float) + v.size(), '\0');
  std::memcpy(out.data(), &scale, sizeof scale);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const long q = std::lround(v[i] / scale);
    out[sizeof(float) + i] = static_cast<char>(static_cast<std::int8_t>(std::clamp(q, -127L, 127L)));
  }
  return out;
}

std::vector<float> decodeVector(const std::string& bytes) {
  if (bytes.size() < sizeof(float)) return {};
  float scale = 0;
  std::memcpy(&scale, bytes.data(), sizeof scale);
  std::vector<float> v(bytes.size() - sizeof(float));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(static_cast<std::int8_t>(bytes[sizeof(float) + i])) * scale;
  return v;
}

SemanticCache::SemanticCache(std::shared_ptr<RedisPool> pool, const CacheConfig& config, std::string key_prefix,
                             std::shared_ptr<const embed::Embedder> embedder, const Clock& clock)
    : pool_(std::move(pool)),
      config_(config),
      prefix_(std::move(key_prefix) + "cache:"),
      embedder_(std::move(embedder)),
      clock_(clock) {
  // Fixed +-1 hyperplanes from a fixed seed: every process computes the same signatures.
  // Stored column-major (dimension x planes) so a sparse vector touches contiguous rows.
  const std::size_t planes = static_cast<std::size_t>(config_.lsh_bands * config_.lsh_rows_per_band);
  const std::size_t dim = static_cast<std::size_t>(embedder_->dimension());
  planes_.resize(planes * dim);
  for (std::size_t j = 0; j < dim; ++j)
    for (std::size_t p = 0; p < planes; ++p)
      planes_[j * planes + p] = (splitmix64(p * 1'000'003ULL + j) >> 63) ? 1.0f : -1.0f;
}

SemanticCache::Signature SemanticCache::signature(const std::vector<float>& v) const {
  const std::size_t planes = static_cast<std::size_t>(config_.lsh_bands * config_.lsh_rows_per_band);
  std::vector<float> acc(planes, 0.0f);
  for (std::size_t j = 0; j < v.size(); ++j) {
    if (v[j] == 0.0f) continue;
    const float* row = &planes_[j * planes];
    const float x = v[j];
    for (std::size_t p = 0; p < planes; ++p) acc[p] += x * row[p];
  }
  Signature s;
  const auto rows = static_cast<std::size_t>(config_.lsh_rows_per_band);
  for (std::size_t b = 0; b < static_cast<std::size_t>(config_.lsh_bands); ++b) {
    std::uint64_t bits = 0;
    for (std::size_t r = 0; r < rows; ++r) bits = (bits << 1) | (acc[b * rows + r] >= 0.0f ? 1u : 0u);
    s.bits.push_back(bits);
  }
  return s;
}

std::string SemanticCache::tenantPrefix(const std::string& tenant) const {
  return prefix_ + "t:" + keySafe(tenant) + ":";
}

std::size_t SemanticCache::bandBytes() const {
  return static_cast<std::size_t>((config_.lsh_rows_per_band + 7) / 8);
}

std::string SemanticCache::bandKey(const std::string& tp, std::size_t band, std::uint64_t bits) const {
  // "l:" (lists); the earlier set-typed buckets were "b:" and are never read.
  return tp + "l:" + std::to_string(band) + ":" + hex64(bits, (config_.lsh_rows_per_band + 3) / 4);
}

namespace {

// The rerank record: created ms (8 bytes), category length (1 byte) and bytes, then the int8
// vector; one GET per candidate gives everything the rerank needs.
std::string encodeRerankRecord(std::int64_t created_ms, const std::string& category, const std::vector<float>& v) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &created_ms, 8);
  const std::string cat = category.substr(0, 255);
  out.push_back(static_cast<char>(cat.size()));
  out += cat;
  out += encodeVector(v);
  return out;
}

struct RerankRecord {
  std::int64_t created_ms = 0;
  std::string_view category;
  std::vector<float> vector;
};

bool decodeRerankRecord(const std::string& bytes, RerankRecord& out) {
  if (bytes.size() < 9) return false;
  std::memcpy(&out.created_ms, bytes.data(), 8);
  const std::size_t len = static_cast<unsigned char>(bytes[8]);
  if (bytes.size() < 9 + len) return false;
  out.category = std::string_view(bytes).substr(9, len);
  out.vector = decodeVector(bytes.substr(9 + len));
  return true;
}

}  // namespace

std::optional<CacheHit> SemanticCache::lookup(const std::string& tenant, const std::string& category,
                                              const std::string& text, bool* skipped) {
  ++lookups_;
  if (skipped) *skipped = false;
  if (!config_.enabled) {
    ++misses_;
    return std::nullopt;
  }
  auto probed = probe(tenant, config_.same_category ? category : std::string(), text, config_.similarity_threshold);
  if (!probed) {
    ++skipped_;
    if (skipped) *skipped = true;
    return std::nullopt;
  }
  if (!probed->best || probed->best->similarity < config_.similarity_threshold) {
    ++misses_;
    return std::nullopt;
  }
  ++(probed->best->exact ? exact_hits_ : semantic_hits_);
  return probed->best;
}

void SemanticCache::insert(const std::string& tenant, const std::string& text, const CacheEntry& entry) {
  if (!config_.enabled) return;
  if (store(tenant, text, entry))
    ++inserts_;
  else
    ++insert_skipped_;
}

Result<CacheProbe> SemanticCache::probe(const std::string& tenant, const std::string& category, const std::string& text,
                                        double min_similarity) {
  const std::string norm = embed::normaliseForCache(text);
  auto embedded = embedder_->embed(text);
  if (!embedded) return embedded.error();
  const auto& v = *embedded;
  const Signature sig = signature(v);
  const std::string tp = tenantPrefix(tenant);
  const std::int64_t now_ms = epochMillis(clock_.now());
  const std::int64_t oldest_ms = now_ms - config_.ttl_s * 1000;

  std::vector<std::vector<std::string>> first;
  first.push_back({"GET", tp + "x:" + exactHash(norm)});
  for (std::size_t b = 0; b < sig.bits.size(); ++b)
    first.push_back({"LRANGE", bandKey(tp, b, sig.bits[b]), "0", std::to_string(SemanticCache::kBucketCapacity - 1)});
  auto replies = pool_->pipeline(first);
  if (!replies) return replies.error();
  CacheProbe out;
  auto entryOk = [&](const CacheEntry& e) {
    return epochMillis(e.created) >= oldest_ms && (category.empty() || e.category == category);
  };
  if (!(*replies)[0].isNil()) {
    std::vector<std::string> cmd = {"HMGET", tp + "e:" + (*replies)[0].str};
    cmd.insert(cmd.end(), kEntryFields.begin(), kEntryFields.end());
    auto exact = pool_->command(cmd);
    if (!exact) return exact.error();
    if (exact->elements.size() == kEntryFields.size() && !exact->elements[6].isNil()) {
      CacheEntry e = entryFrom(exact->elements);
      if (entryOk(e)) {
        out.best = CacheHit{std::move(e), 1.0, true};
        return out;
      }
    }
  }
  // Candidates sharing the most bands first (ties: the smaller id, so every process agrees).
  std::vector<std::uint64_t> ids;
  for (std::size_t i = 1; i < replies->size(); ++i)
    for (const auto& member : (*replies)[i].elements) {
      std::uint64_t id = 0;
      const char* end = member.str.data() + member.str.size();
      if (std::from_chars(member.str.data(), end, id).ptr == end) ids.push_back(id);
    }
  std::sort(ids.begin(), ids.end());
  std::vector<std::pair<int, std::uint64_t>> ranked;  // (bands shared, id)
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    ranked.emplace_back(static_cast<int>(j - i), ids[i]);
    i = j;
  }
  const std::size_t keep = std::min(kMaxCandidates, ranked.size());
  std::partial_sort(
      ranked.begin(), ranked.begin() + static_cast<long>(keep), ranked.end(),
      [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  ranked.resize(keep);
  if (ranked.empty()) return out;
  std::vector<std::string> fetch = {"MGET"};
  for (const auto& candidate : ranked) fetch.push_back(tp + "v:" + std::to_string(candidate.second));
  auto vectors = pool_->command(fetch);
  if (!vectors) return vectors.error();
  if (vectors->elements.size() != ranked.size()) return unexpected(*vectors);
  double best = -2;
  std::optional<std::uint64_t> best_id;
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    const auto& f = vectors->elements[i];
    RerankRecord record;
    if (f.isNil() || !decodeRerankRecord(f.str, record)) continue;  // expired meanwhile
    if (record.created_ms < oldest_ms || (!category.empty() && record.category != category)) continue;
    const auto& stored = record.vector;
    if (stored.size() != v.size()) continue;  // written with another dimension
    double dot = 0, n2 = 0;
    for (std::size_t j = 0; j < v.size(); ++j) {
      dot += static_cast<double>(v[j]) * stored[j];
      n2 += static_cast<double>(stored[j]) * stored[j];
    }
    ++out.candidates;
    const double cosine = n2 > 0 ? dot / std::sqrt(n2) : 0;
    if (cosine > best) {
      best = cosine;
      best_id = ranked[i].second;
    }
  }
  if (!best_id || best < min_similarity) return out;  // a miss needs no third round trip
  std::vector<std::string> cmd = {"HMGET", tp + "e:" + std::to_string(*best_id)};
  cmd.insert(cmd.end(), kEntryFields.begin(), kEntryFields.end());
  auto full = pool_->command(cmd);
  if (!full) return full.error();
  if (full->elements.size() != kEntryFields.size() || full->elements[6].isNil()) return out;
  out.best = CacheHit{entryFrom(full->elements), std::min(best, 1.0), false};
  return out;
}

Status SemanticCache::store(const std::string& tenant, const std::string& text, const CacheEntry& entry) {
  const std::string norm = embed::normaliseForCache(text);
  auto embedded = embedder_->embed(text);
  if (!embedded) return embedded.error();
  const Signature sig = signature(*embedded);
  const std::string tp = tenantPrefix(tenant);
  const std::string id = newEntryId();
  const auto created = entry.created == std::chrono::system_clock::time_point{} ? clock_.now() : entry.created;
  const std::string ttl_ms = std::to_string(config_.ttl_s * 1000 + kBackstopExtraMs);
  const std::string exact_hash = exactHash(norm);
  // Band buckets, ceil(rows/8) little-endian bytes each, so deletion finds the sets without
  // recomputing; short enough to keep the entry hash in Redis' compact encoding.
  const std::size_t width = bandBytes();
  std::string bands;
  for (std::uint64_t bits : sig.bits)
    for (std::size_t i = 0; i < width; ++i) bands.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back({"HSET", tp + "e:" + id,
                  "a",    entry.answer_json,
                  "m",    entry.model,
                  "r",    entry.tier,
                  "c",    std::to_string(entry.cost_micro_usd),
                  "s",    entry.source_ticket_id,
                  "k",    entry.category,
                  "t",    std::to_string(epochMillis(created)),
                  "g",    bands,
                  "x",    exact_hash});
  cmds.push_back({"PEXPIRE", tp + "e:" + id, ttl_ms});
  cmds.push_back(
      {"SET", tp + "v:" + id, encodeRerankRecord(epochMillis(created), entry.category, *embedded), "PX", ttl_ms});
  cmds.push_back({"SET", tp + "x:" + exact_hash, id, "PX", ttl_ms});
  // Band lists carry no TTL: expired entries are removed from them (below, and by purge), the
  // trim bounds each, and Redis deletes a list when its last member goes.
  for (std::size_t b = 0; b < sig.bits.size(); ++b) {
    const std::string key = bandKey(tp, b, sig.bits[b]);
    cmds.push_back({"LPUSH", key, id});
    cmds.push_back({"LTRIM", key, "0", std::to_string(SemanticCache::kBucketCapacity - 1)});
  }
  cmds.push_back({"ZADD", tp + "idx", std::to_string(epochMillis(created)), id});
  cmds.push_back({"PEXPIRE", tp + "idx", ttl_ms});
  cmds.push_back({"SADD", prefix_ + "tenants", tenant});
  auto replies = pool_->pipeline(cmds);
  if (!replies) return replies.error();
  for (const auto& r : *replies)
    if (r.type == Reply::Type::kError) return unexpected(r);
  static std::atomic<std::uint64_t> stores{0};
  if (stores.fetch_add(1) % kExpireEvery == kExpireEvery - 1) {
    const std::int64_t cutoff = epochMillis(clock_.now()) - config_.ttl_s * 1000;
    auto old = pool_->command(
        {"ZRANGEBYSCORE", tp + "idx", "-inf", std::to_string(cutoff), "LIMIT", "0", std::to_string(kExpireBatch)});
    if (old && !old->elements.empty()) {
      std::vector<std::string> ids;
      for (const auto& e : old->elements) ids.push_back(e.str);
      if (auto deleted = deleteEntries(tenant, ids); !deleted) return deleted.error();
    }
  }
  return {};
}

Result<bool> SemanticCache::forget(const std::string& tenant, const std::string& text,
                                   const std::string& source_ticket_id) {
  const std::string tp = tenantPrefix(tenant);
  auto id = pool_->command({"GET", tp + "x:" + exactHash(embed::normaliseForCache(text))});
  if (!id) return id.error();
  if (id->isNil()) return false;
  auto source = pool_->command({"HGET", tp + "e:" + id->str, "s"});
  if (!source) return source.error();
  if (source->isNil() || source->str != source_ticket_id) return false;  // another ticket's, same text
  auto deleted = deleteEntries(tenant, {id->str});
  if (!deleted) return deleted.error();
  return *deleted > 0;
}

Result<std::int64_t> SemanticCache::deleteEntries(const std::string& tenant, const std::vector<std::string>& ids) {
  const std::string tp = tenantPrefix(tenant);
  std::int64_t deleted = 0;
  constexpr std::size_t kChunk = 500;
  for (std::size_t start = 0; start < ids.size(); start += kChunk) {
    const std::size_t end = std::min(ids.size(), start + kChunk);
    std::vector<std::vector<std::string>> fetch;
    for (std::size_t i = start; i < end; ++i) fetch.push_back({"HMGET", tp + "e:" + ids[i], "g", "x"});
    auto meta = pool_->pipeline(fetch);
    if (!meta) return meta.error();
    std::vector<std::vector<std::string>> cmds;
    for (std::size_t i = start; i < end; ++i) {
      const auto& f = (*meta)[i - start].elements;
      if (f.size() == 2 && !f[0].isNil()) {
        const std::string& g = f[0].str;
        const std::size_t width = bandBytes();
        for (std::size_t b = 0; (b + 1) * width <= g.size(); ++b) {
          std::uint64_t bits = 0;
          for (std::size_t k = 0; k < width; ++k)
            bits |= static_cast<std::uint64_t>(static_cast<unsigned char>(g[b * width + k])) << (8 * k);
          cmds.push_back({"LREM", bandKey(tp, b, bits), "0", ids[i]});
        }
        ++deleted;
      }
      if (f.size() == 2 && !f[1].isNil()) cmds.push_back({"DEL", tp + "x:" + f[1].str});
      cmds.push_back({"DEL", tp + "e:" + ids[i], tp + "v:" + ids[i]});
      cmds.push_back({"ZREM", tp + "idx", ids[i]});
    }
    auto done = pool_->pipeline(cmds);
    if (!done) return done.error();
  }
  return deleted;
}

Result<std::vector<std::string>> SemanticCache::tenants() {
  auto reply = pool_->command({"SMEMBERS", prefix_ + "tenants"});
  if (!reply) return reply.error();
  if (reply->type != Reply::Type::kArray) return unexpected(*reply);
  std::vector<std::string> out;
  for (const auto& e : reply->elements) out.push_back(e.str);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::int64_t> SemanticCache::purge(const CachePurgeFilter& filter) {
  std::vector<std::string> names;
  if (filter.tenant) {
    names.push_back(*filter.tenant);
  } else {
    auto all = tenants();
    if (!all) return all.error();
    names = *all;
  }
  std::int64_t total = 0;
  for (const auto& tenant : names) {
    const std::string tp = tenantPrefix(tenant);
    std::vector<std::string> ids;
    const std::string max_score =
        filter.older_than ? std::to_string(epochMillis(clock_.now()) - filter.older_than->count() * 1000) : "+inf";
    auto listed = pool_->command({"ZRANGEBYSCORE", tp + "idx", "-inf", max_score});
    if (!listed) return listed.error();
    for (const auto& e : listed->elements) ids.push_back(e.str);
    if (filter.category) {
      std::vector<std::string> matching;
      constexpr std::size_t kChunk = 1000;
      for (std::size_t start = 0; start < ids.size(); start += kChunk) {
        std::vector<std::vector<std::string>> fetch;
        for (std::size_t i = start; i < std::min(ids.size(), start + kChunk); ++i)
          fetch.push_back({"HGET", tp + "e:" + ids[i], "k"});
        auto cats = pool_->pipeline(fetch);
        if (!cats) return cats.error();
        for (std::size_t i = 0; i < cats->size(); ++i)
          if ((*cats)[i].str == *filter.category) matching.push_back(ids[start + i]);
      }
      ids = std::move(matching);
    }
    auto deleted = deleteEntries(tenant, ids);
    if (!deleted) return deleted.error();
    total += *deleted;
    if (!filter.category && !filter.older_than) {
      if (auto r = pool_->command({"SREM", prefix_ + "tenants", tenant}); !r) return r.error();
    }
  }
  return total;
}

Result<CacheStats> SemanticCache::stats() {
  auto names = tenants();
  if (!names) return names.error();
  CacheStats out;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& t : *names) {
    const std::string idx = tenantPrefix(t) + "idx";
    cmds.push_back({"ZCARD", idx});
    cmds.push_back({"ZRANGE", idx, "0", "0", "WITHSCORES"});
    cmds.push_back({"ZRANGE", idx, "-1", "-1", "WITHSCORES"});
  }
  cmds.push_back({"INFO", "memory"});
  auto replies = pool_->pipeline(cmds);
  if (!replies) return replies.error();
  for (std::size_t i = 0; i < names->size(); ++i) {
    CacheTenantStats s;
    s.tenant = (*names)[i];
    s.entries = (*replies)[i * 3].integer;
    auto at = [](const Reply& r) {
      return std::chrono::system_clock::time_point(
          std::chrono::milliseconds(r.elements.size() == 2 ? toInt(r.elements[1]) : 0));
    };
    s.oldest = at((*replies)[i * 3 + 1]);
    s.newest = at((*replies)[i * 3 + 2]);
    out.tenants.push_back(s);
  }
  const std::string& info = replies->back().str;
  out.used_memory = infoField(info, "used_memory_human").value_or("");
  return out;
}

CacheCounters SemanticCache::counters() const {
  CacheCounters c;
  c.lookups = lookups_;
  c.exact_hits = exact_hits_;
  c.semantic_hits = semantic_hits_;
  c.misses = misses_;
  c.skipped = skipped_;
  c.inserts = inserts_;
  c.insert_skipped = insert_skipped_;
  return c;
}

}  // namespace ticketflow::redis
