// Shadow evaluation's store on a real redis-server: a comparison counts once however often it is
// recorded, the table reads back per tier x category with Wilson intervals, and the labels come
// back oldest first.
#include "ticketflow/redis/agreement_store.hpp"

#include <gtest/gtest.h>

#include "fixtures/services.hpp"
#include "pipeline/agreement_report.hpp"

namespace ticketflow {
namespace {

class AgreementStoreTest : public testing::RedisTest {
 protected:
  redis::AgreementStore makeStore() {
    redis::RedisPoolOptions options;
    options.endpoint.port = server().port();
    options.pool_size = 2;
    return redis::AgreementStore(std::make_shared<redis::RedisPool>(options), key_prefix_);
  }
  static redis::ShadowComparison comparison(const std::string& id, const std::string& tier, const std::string& category,
                                            bool category_agrees, bool needs_human_agrees) {
    redis::ShadowComparison c;
    c.tenant = "acme";
    c.ticket_id = id;
    c.revision = 1;
    c.category_agrees = category_agrees;
    c.needs_human_agrees = needs_human_agrees;
    c.label.tier = tier;
    c.label.category = category;
    c.label.features.category_agrees = category_agrees;
    c.label.agreed = category_agrees && needs_human_agrees;
    return c;
  }
};

TEST_F(AgreementStoreTest, AComparisonCountsOnceAndTheTableAndLabelsReadBack) {
  auto store = makeStore();
  ASSERT_TRUE(store.reset().ok());
  for (int i = 0; i < 40; ++i) {
    auto counted = store.record(comparison("T-" + std::to_string(i), "fast", "Hardware", i % 4 != 0, i % 10 != 0));
    ASSERT_TRUE(counted.ok()) << counted.error().message;
    EXPECT_TRUE(*counted);
  }
  auto again = store.record(comparison("T-1", "fast", "Hardware", false, false));  // a redelivery
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  auto other_tier = store.record(comparison("T-1", "balanced", "Hardware", true, true));
  ASSERT_TRUE(other_tier.ok());
  EXPECT_TRUE(*other_tier) << "the same ticket compared at another tier is another comparison";
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store.countAnswered("fast", "Hardware").ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(store.countAnswered("frontier", "Hardware").ok());

  auto table = store.table();
  ASSERT_TRUE(table.ok()) << table.error().message;
  const redis::AgreementCell& fast = (*table)["fast"]["Hardware"];
  EXPECT_EQ(fast.answered, 100);
  EXPECT_EQ(fast.category.trials, 40);
  EXPECT_EQ(fast.category.successes, 30);
  EXPECT_EQ(fast.needs_human.successes, 36);
  EXPECT_EQ(fast.both.successes, 28);                 // i % 4 != 0 and i % 10 != 0: 40 - (10 + 4 - 2)
  EXPECT_NEAR(fast.category.lower(), 0.5981, 0.001);  // Wilson 95% for 30 of 40
  EXPECT_NEAR(fast.category.upper(), 0.8581, 0.001);
  EXPECT_EQ((*table)["balanced"]["Hardware"].both.successes, 1);

  // Final answers: 100 at fast agreeing 70%, 50 at the reference (itself): 80%.
  const auto final = pipeline::finalAgreement(*table, "frontier");
  EXPECT_EQ(final.answered, 150);
  EXPECT_NEAR(final.both, (100 * 0.7 + 50) / 150, 1e-9);
  EXPECT_LT(final.both_lower, final.both);
  EXPECT_GT(final.both_upper, final.both);
  const std::string text = pipeline::agreementText(*table, "frontier");
  EXPECT_NE(text.find("75.0% [59.8%, 85.8%]"), std::string::npos) << text;

  auto labels = store.labels();
  ASSERT_TRUE(labels.ok()) << labels.error().message;
  ASSERT_EQ(labels->size(), 41u);
  EXPECT_EQ(labels->front().tier, "fast");
  EXPECT_FALSE(labels->front().agreed) << "T-0: category disagreed";
  EXPECT_EQ(labels->back().tier, "balanced");
  // An answer the verifier sent up: a training label, not a final answer's agreement.
  auto escalated = comparison("T-99", "fast", "Hardware", false, true);
  escalated.final_answer = false;
  ASSERT_TRUE(*store.record(escalated));
  auto after = store.table();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)["fast"]["Hardware"].both.trials, 40);
  EXPECT_EQ(store.labels()->size(), 42u);

  ASSERT_TRUE(store.reset().ok());
  EXPECT_TRUE(store.table()->empty());
  EXPECT_TRUE(store.labels()->empty());
  auto replayed = store.record(comparison("T-1", "fast", "Hardware", true, true));
  ASSERT_TRUE(replayed.ok());
  EXPECT_TRUE(*replayed) << "after a reset a replay counts again";
}

TEST(Proportion, WilsonBoundsStayInsideZeroAndOne) {
  const redis::Proportion none{0, 0}, all{20, 20}, zero{0, 20};
  EXPECT_EQ(none.lower(), 0.0);
  EXPECT_EQ(none.upper(), 1.0);
  EXPECT_NEAR(all.lower(), 0.8389, 0.001);
  EXPECT_EQ(all.upper(), 1.0);
  EXPECT_EQ(zero.lower(), 0.0);
  EXPECT_NEAR(zero.upper(), 0.1611, 0.001);
}

}  // namespace
}  // namespace ticketflow
