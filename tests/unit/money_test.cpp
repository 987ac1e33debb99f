#include "ticketflow/core/money.hpp"

#include <gtest/gtest.h>

namespace ticketflow {
namespace {

TEST(Money, ExactShowsEveryMicroDollar) {
  EXPECT_EQ(formatUsdExact(0), "$0.000000");
  EXPECT_EQ(formatUsdExact(1), "$0.000001");
  EXPECT_EQ(formatUsdExact(12'500'000), "$12.500000");
  EXPECT_EQ(formatUsdExact(-1), "-$0.000001");
}

TEST(Money, ReportsRoundToCentsFromAHundredDollars) {
  EXPECT_EQ(formatUsd(1'873'012), "$1.8730");
  EXPECT_EQ(formatUsd(99'999'999), "$100.0000");
  EXPECT_EQ(formatUsd(100'000'000), "$100.00");
  EXPECT_EQ(formatUsd(123'456'789), "$123.46");
  EXPECT_EQ(formatUsd(-2'500'000), "-$2.5000");
}

}  // namespace
}  // namespace ticketflow
