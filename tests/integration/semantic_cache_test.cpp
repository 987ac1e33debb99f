#include "ticketflow/redis/semantic_cache.hpp"

#include <cmath>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/services.hpp"
#include "fixtures/simulator.hpp"
#include "sim/simulator.hpp"

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
  // A cache on the suite's redis-server; the built-in embedder unless another is given.
  std::unique_ptr<SemanticCache> makeCache(std::shared_ptr<const embed::Embedder> embedder = nullptr) {
    redis::RedisPoolOptions options;
    options.endpoint.port = server().port();
    options.pool_size = 2;
    options.command_timeout = std::chrono::seconds(2);
    if (!embedder) embedder = std::make_shared<embed::HashingEmbedder>(config_.dimension);
    return std::make_unique<SemanticCache>(std::make_shared<redis::RedisPool>(options), config_, key_prefix_,
                                           std::move(embedder), clock_);
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

const std::string kVpn =
    "VPN client keeps disconnecting every few minutes when working from home, cannot reach the file share";
const std::string kVpnSimilar =
    "vpn client keeps disconnecting every few minutes when working from home cannot reach file shares";
const std::string kPrinter =
    "Printer on the third floor jams on every page and shows error E-42, toner was replaced yesterday";

TEST_F(SemanticCacheTest, ExactAndNearDuplicateTicketsHitAndOthersMiss) {
  auto cache = makeCache();
  cache->insert("acme", kVpn, entry("T-1", "Access"));
  auto exact = cache->lookup(
      "acme", "Access",
      "  vpn CLIENT keeps disconnecting every few minutes when working from home; cannot reach the file share!");
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

TEST_F(SemanticCacheTest, ACrowdedBandBucketKeepsOnlyItsNewestMembers) {
  auto cache = makeCache();
  // Near-identical texts share most band buckets: more of them than a bucket holds overfill those.
  for (int i = 0; i < SemanticCache::kBucketCapacity + 40; ++i)
    cache->insert("acme",
                  kVpn + " ticket reference " + std::to_string(i) + std::string(1, static_cast<char>('a' + i % 26)),
                  entry("T-" + std::to_string(i), "Access"));
  auto redis = connect();
  std::int64_t longest = 0, buckets = 0;
  std::string cursor = "0";
  for (int pass = 0; pass < 1000; ++pass) {
    auto scanned = redis->command({"SCAN", cursor, "MATCH", key_prefix_ + "cache:t:acme:l:*", "COUNT", "1000"});
    ASSERT_TRUE(scanned.ok());
    for (const auto& key : scanned->elements[1].elements) {
      auto length = redis->command({"LLEN", key.str});
      ASSERT_TRUE(length.ok());
      longest = std::max(longest, length->integer);
      ++buckets;
    }
    cursor = scanned->elements[0].str;
    if (cursor == "0") break;
  }
  EXPECT_GT(buckets, 0);
  EXPECT_EQ(longest, SemanticCache::kBucketCapacity) << "the crowded buckets are trimmed to their newest ids";
  // The newest entries stay findable through their crowded buckets.
  const int newest = SemanticCache::kBucketCapacity + 39;
  auto probe = cache->probe("acme", "", kVpn + " ticket reference " + std::to_string(newest) + " x");
  ASSERT_TRUE(probe.ok());
  ASSERT_TRUE(probe->best.has_value());
  EXPECT_GE(probe->best->similarity, 0.97);
  // Purge removes the memberships too: no bucket outlives its entries.
  ASSERT_TRUE(cache->purge({std::string("acme"), std::nullopt, std::nullopt}).ok());
  auto left = redis->command({"SCAN", "0", "MATCH", key_prefix_ + "cache:t:acme:*", "COUNT", "100000"});
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->elements[1].elements.empty());
}

// The remote embedder against the provider simulator's /v1/embeddings over loopback.
class OpenAiEmbedderTest : public SemanticCacheTest {
 protected:
  void SetUp() override {
    SemanticCacheTest::SetUp();
    auto options = testing::instantSimulatorOptions();
    options.expected_api_key = "embed-key-123";
    simulator_ = std::make_unique<sim::ProviderSimulator>(options);
    ::setenv(kKeyEnv, "embed-key-123", 1);
    config_with_endpoint_ = loadEmbeddedConfig();
    ProviderConfig p;
    p.name = "embeddings";
    p.base_url = simulator_->baseUrl() + "/v1";
    p.api_key_env = kKeyEnv;
    p.connect_timeout_ms = 500;
    p.total_timeout_ms = 2000;
    config_with_endpoint_.providers.push_back(p);
    config_with_endpoint_.cache.embedder = EmbedderKind::kOpenAi;
    config_with_endpoint_.cache.embedder_provider = "embeddings";
    config_with_endpoint_.cache.embedder_model = "text-embedding-3-small";
    config_with_endpoint_.cache.dimension = 512;
  }
  static constexpr const char* kKeyEnv = "TICKETFLOW_TEST_EMBEDDINGS_KEY";
  std::unique_ptr<sim::ProviderSimulator> simulator_;
  Config config_with_endpoint_;
};

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0;
  for (std::size_t i = 0; i < a.size(); ++i) dot += static_cast<double>(a[i]) * b[i];
  return dot;
}

TEST_F(OpenAiEmbedderTest, EmbedsOverHttpOncePerTextAndAnswersNearDuplicatesFromTheCache) {
  auto embedder = embed::makeEmbedder(config_with_endpoint_);
  auto* remote = dynamic_cast<const embed::OpenAiEmbedder*>(embedder.get());
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(embedder->dimension(), 512);
  auto a = embedder->embed(kVpn);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_EQ(a->size(), 512u);
  EXPECT_NEAR(cosine(*a, *a), 1.0, 1e-5);
  auto near = embedder->embed(kVpnSimilar);
  auto other = embedder->embed(kPrinter);
  ASSERT_TRUE(near.ok() && other.ok());
  EXPECT_GT(cosine(*a, *near), 0.9);
  EXPECT_LT(cosine(*a, *other), 0.5);
  ASSERT_TRUE(embedder->embed(kVpn).ok());
  EXPECT_EQ(remote->calls(), 3u) << "a text embedded again is answered from memory";
  EXPECT_EQ(simulator_->stats().embeddings, 3);

  auto cache = makeCache(embedder);
  cache->insert("acme", kVpn, entry("T-1", "Access"));
  auto hit = cache->lookup("acme", "Access", kVpnSimilar);
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->exact);
  EXPECT_EQ(hit->entry.source_ticket_id, "T-1");
}

TEST_F(OpenAiEmbedderTest, AWrongKeyAWrongDimensionAndAMissingKeyAreClearErrors) {
  config_with_endpoint_.cache.embedder_send_dimensions = false;  // the simulator then answers 1536
  auto wrong_dimension = embed::makeEmbedder(config_with_endpoint_)->embed(kVpn);
  ASSERT_FALSE(wrong_dimension.ok());
  EXPECT_NE(wrong_dimension.error().message.find("returned 1536 dimensions; cache.embedder.dimension is 512"),
            std::string::npos)
      << wrong_dimension.error().message;

  ::setenv(kKeyEnv, "not-the-key", 1);
  auto unauthorised = embed::makeEmbedder(config_with_endpoint_)->embed(kVpn);
  ASSERT_FALSE(unauthorised.ok());
  EXPECT_NE(unauthorised.error().message.find("HTTP 401"), std::string::npos);
  EXPECT_EQ(unauthorised.error().message.find("not-the-key"), std::string::npos) << "the key is never in a message";

  ::unsetenv(kKeyEnv);
  try {
    embed::makeEmbedder(config_with_endpoint_);
    FAIL() << "an unset key variable must stop start-up";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(kKeyEnv), std::string::npos) << e.what();
  }
}

TEST_F(OpenAiEmbedderTest, ADeadEndpointSkipsTheCacheAndTheBreakerStopsCallingIt) {
  auto embedder = embed::makeEmbedder(config_with_endpoint_);
  auto* remote = dynamic_cast<const embed::OpenAiEmbedder*>(embedder.get());
  ASSERT_NE(remote, nullptr);
  auto cache = makeCache(embedder);
  simulator_.reset();  // the endpoint goes away: connections are refused
  for (int i = 0; i < 20; ++i) {
    bool skipped = false;
    EXPECT_FALSE(cache->lookup("acme", "Access", kVpn + " " + std::to_string(i), &skipped).has_value());
    EXPECT_TRUE(skipped);
  }
  EXPECT_EQ(cache->counters().skipped, 20u);
  EXPECT_LE(remote->calls(), 6u) << "the breaker opens after a few failures and refuses the rest without a call";
}

TEST(CacheVectors, Int8CodecKeepsCosine) {
  embed::HashingEmbedder embedder(1024);
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
  embed::HashingEmbedder embedder(512);
  const auto a = *embedder.embed(kVpn);
  const auto b = *embedder.embed(kVpn);
  EXPECT_EQ(a, b);
  double n = 0;
  for (float x : a) n += x * x;
  EXPECT_NEAR(n, 1.0, 1e-5);
  EXPECT_EQ(embed::normaliseForCache("Error E-42 on PC #1234!"), "error e 0 on pc 0");
  const auto empty = *embedder.embed("!!!");
  for (float x : empty) EXPECT_EQ(x, 0.0f);
}

}  // namespace
}  // namespace ticketflow
