#include "ticketflow/core/stats.hpp"

#include <gtest/gtest.h>

namespace ticketflow {
namespace {

TEST(Percentile, IsTheNearestRank) {
  // 1..100: the p-th percentile is the value p*100 (the smallest with that share at or below it).
  std::vector<double> hundred;
  for (int i = 100; i >= 1; --i) hundred.push_back(i);  // unsorted on purpose
  EXPECT_EQ(percentile(hundred, 0.50), 50);
  EXPECT_EQ(percentile(hundred, 0.99), 99);
  EXPECT_EQ(percentile(hundred, 0.95), 95);
  EXPECT_EQ(percentile(hundred, 1.0), 100);
  EXPECT_EQ(percentile(hundred, 0.0), 1);
  EXPECT_EQ(percentile(hundred, 0.001), 1);
  EXPECT_EQ(percentile(hundred, 0.07), 7) << "0.07 * 100 is not quite 7 in binary";
}

TEST(Percentile, SmallSamplesRoundTheRankUp) {
  // Of 4 values, p50 is the 2nd and p99 the 4th: a p99 never hides the slowest of a few.
  const std::vector<double> four = {10, 20, 30, 40};
  EXPECT_EQ(percentileOfSorted(four, 0.50), 20);
  EXPECT_EQ(percentileOfSorted(four, 0.51), 30);
  EXPECT_EQ(percentileOfSorted(four, 0.99), 40);
  EXPECT_EQ(percentileOfSorted({7}, 0.5), 7);
  EXPECT_EQ(percentile({}, 0.99), 0);
  EXPECT_EQ(percentileOfSorted(four, 1.5), 40) << "p is clamped to [0, 1]";
  EXPECT_EQ(percentileOfSorted(four, -1), 10);
}

}  // namespace
}  // namespace ticketflow
