#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "fixtures/services.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow {
namespace {

using redis::CacheEntry;
using redis::SemanticCache;

class SemanticCacheTest : public testing::RedisTest {
 protected:
  void SetUp() override {
    clock_.setWall(std::chrono::system_clock::from_time_t(1795348800));
    config_.similarity_threshold = 0.9;
    config_.same_category = true;
  }
  std::unique_ptr<SemanticCache> makeCache() {
    redis::RedisPoolOptions options;
    options.endpoint.port = server().port();
    options.pool_size = 2;
    options.command_timeout = std::chrono::seconds(2);
    return std::make_unique<SemanticCache>(std::make_shared<redis::RedisPool>(options), config_, key_prefix_,
                                           redis::makeEmbedder(config_), clock_);
  }
  static CacheEntry entry(const std::string& source, const std::string& category) {
    CacheEntry e;
    e.answer_json = R"({"reply":"reset it via the self-service portal"})";
    e.model = "deepseek-v4-flash";
    e.tier = "fast";
    e.cost_micro_usd = 123;
    e.source_ticket_id = source;
    e.category = category;
    return e;
  }
  CacheConfig config_;
  ManualClock clock_;
};

const std::string kVpn = "VPN client keeps disconnecting every few minutes when working from home, cannot reach the file share";
const std::string kVpnSimilar = "vpn client keeps disconnecting every few minutes when working from home cannot reach file shares";
const std::string kPrinter = "Printer on the third floor jams on every page and shows error E-42, toner was replaced yesterday";

TEST_F(SemanticCacheTest, ExactAndNearDuplicateTicketsHitAndOthersMiss) {
  auto cache = makeCache();
  cache->insert("acme", kVpn, entry("T-1", "Access"));
  auto exact = cache->lookup("acme", "Access", "  vpn CLIENT keeps disconnecting every few minutes when working from home; cannot reach the file share!");
  ASSERT_TRUE(exact.has_value());
  EXPECT_TRUE(exact->exact);
  EXPECT_EQ(exact->entry.source_ticket_id, "T-1");
  EXPECT_EQ(exact->entry.model, "deepseek-v4-flash");
  EXPECT_EQ(exact->entry.tier, "fast");
  EXPECT_EQ(exact->entry.cost_micro_usd, 123);
  EXPECT_EQ(exact->entry.created, clock_.now());
  EXPECT_EQ(exact->entry.answer_json, entry("T-1", "Access").answer_json);

  auto near = cache->lookup("acme", "Access", kVpnSimilar);
  ASSERT_TRUE(near.has_value());
  EXPECT_FALSE(near->exact);
  EXPECT_GE(near->similarity, 0.9);
  EXPECT_LT(near->similarity, 1.0);

  EXPECT_FALSE(cache->lookup("acme", "Access", kPrinter).has_value());
  EXPECT_FALSE(cache->lookup("acme", "Hardware", kVpn).has_value()) << "same_category is on";
  const auto c = cache->counters();
  EXPECT_EQ(c.exact_hits, 1u);
  EXPECT_EQ(c.semantic_hits, 1u);
  EXPECT_EQ(c.misses, 2u);
  EXPECT_EQ(c.inserts, 1u);
}

TEST_F(SemanticCacheTest, ATenantNeverSeesAnotherTenantsEntries) {
  auto cache = makeCache();
  cache->insert("acme", kVpn, entry("ACME-1", "Access"));
  cache->insert("globex", kPrinter, entry("GLOBEX-1", "Hardware"));
  EXPECT_FALSE(cache->lookup("globex", "Access", kVpn).has_value());
  EXPECT_FALSE(cache->lookup("acme", "Hardware", kPrinter).has_value());
  auto probe = cache->probe("globex", "", kVpn);  // nearest entry of globex, any similarity
  ASSERT_TRUE(probe.ok());
  if (probe->best) {
    EXPECT_EQ(probe->best->entry.source_ticket_id, "GLOBEX-1");
  }
  // A tenant name built to look like another tenant's key space is escaped.
  cache->insert("acme:e", kVpn, entry("TRICK-1", "Access"));
  auto acme = cache->lookup("acme", "Access", kVpn);
  ASSERT_TRUE(acme.has_value());
  EXPECT_EQ(acme->entry.source_ticket_id, "ACME-1");
  auto own = cache->lookup("globex", "Hardware", kPrinter);
  ASSERT_TRUE(own.has_value());
  EXPECT_EQ(own->entry.source_ticket_id, "GLOBEX-1");
}

TEST_F(SemanticCacheTest, EntriesExpireAndPurgeByTenantCategoryAndAge) {
  auto cache = makeCache();
  cache->insert("acme", kVpn, entry("A", "Access"));
  cache->insert("acme", kPrinter, entry("B", "Hardware"));
  clock_.advance(std::chrono::hours(2));
  cache->insert("acme", "Outlook asks for the password again after every restart of the laptop", entry("C", "Access"));
  cache->insert("globex", kVpn, entry("D", "Access"));

  auto stats = cache->stats();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(stats->tenants.size(), 2u);
  EXPECT_EQ(stats->tenants[0].tenant, "acme");
  EXPECT_EQ(stats->tenants[0].entries, 3);

  auto by_age = cache->purge({std::string("acme"), std::nullopt, std::chrono::seconds(3600)});
  ASSERT_TRUE(by_age.ok());
  EXPECT_EQ(*by_age, 2);
  EXPECT_FALSE(cache->lookup("acme", "Access", kVpn).has_value());
  auto by_category = cache->purge({std::nullopt, std::string("Access"), std::nullopt});
  ASSERT_TRUE(by_category.ok());
  EXPECT_EQ(*by_category, 2);  // C (acme) and D (globex)
  EXPECT_FALSE(cache->lookup("globex", "Access", kVpn).has_value());

  cache->insert("globex", kPrinter, entry("E", "Hardware"));
  ASSERT_TRUE(cache->lookup("globex", "Hardware", kPrinter).has_value());
  clock_.advance(std::chrono::seconds(config_.ttl_s + 1));
  EXPECT_FALSE(cache->lookup("globex", "Hardware", kPrinter).has_value()) << "older than cache.ttl_s";
  auto all = cache->purge({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 1);
  EXPECT_TRUE(cache->stats()->tenants.empty());
}

TEST_F(SemanticCacheTest, RedisDownSkipsTheCacheAndARestartResumesIt) {
  auto cache = makeCache();
  cache->insert("acme", kVpn, entry("A", "Access"));
  ASSERT_TRUE(cache->lookup("acme", "Access", kVpn).has_value());
  server().stop(/*crash=*/true);
  EXPECT_FALSE(cache->lookup("acme", "Access", kVpn).has_value());
  cache->insert("acme", kPrinter, entry("B", "Hardware"));
  EXPECT_GE(cache->counters().skipped, 1u);
  EXPECT_EQ(cache->counters().insert_skipped, 1u);
  server().restart();  // memory-only: the cache starts empty
  bool stored = false;
  for (int i = 0; i < 100 && !stored; ++i) {
    cache->insert("acme", kPrinter, entry("B", "Hardware"));
    stored = cache->lookup("acme", "Hardware", kPrinter).has_value();
    if (!stored) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(stored);
}

TEST(CacheVectors, Int8CodecKeepsCosine) {
  redis::HashingEmbedder embedder(1024);
  const auto a = *embedder.embed(kVpn);
  const auto decoded = redis::decodeVector(redis::encodeVector(a));
  ASSERT_EQ(decoded.size(), a.size());
  double dot = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * decoded[i];
    n += decoded[i] * decoded[i];
  }
  EXPECT_GT(dot / std::sqrt(n), 0.999);
}

TEST(CacheEmbedder, DeterministicUnitVectorsAndNormalisation) {
  redis::HashingEmbedder embedder(512);
  const auto a = *embedder.embed(kVpn);
  const auto b = *embedder.embed(kVpn);
  EXPECT_EQ(a, b);
  double n = 0;
  for (float x : a) n += x * x;
  EXPECT_NEAR(n, 1.0, 1e-5);
  EXPECT_EQ(redis::normaliseForCache("Error E-42 on PC #1234!"), "error e 0 on pc 0");
  const auto empty = *embedder.embed("!!!");
  for (float x : empty) EXPECT_EQ(x, 0.0f);
}

}  // namespace
}  // namespace ticketflow
