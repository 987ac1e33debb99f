#include <gtest/gtest.h>

#include "ticketflow/stage/offset_tracker.hpp"

namespace ticketflow::stage {
namespace {

TEST(PartitionOffsets, CommitPointIsTheFirstOffsetNotDone) {
  PartitionOffsets p(10);
  EXPECT_EQ(p.nextCommit(), 10);
  for (int o = 10; o < 15; ++o) EXPECT_FALSE(p.track(o));
  p.complete(12);
  p.complete(13);
  EXPECT_EQ(p.nextCommit(), 10);
  p.complete(10);
  EXPECT_EQ(p.nextCommit(), 11);
  p.complete(11);
  EXPECT_EQ(p.nextCommit(), 14);
  p.complete(14);
  EXPECT_EQ(p.nextCommit(), 15);
  EXPECT_EQ(p.pending(), 0u);
}

TEST(PartitionOffsets, WithoutCommittedOffsetTheFirstConsumedOneStarts) {
  PartitionOffsets p;
  EXPECT_LT(p.nextCommit(), 0);
  EXPECT_FALSE(p.track(7));
  EXPECT_EQ(p.nextCommit(), 7);
}

TEST(PartitionOffsets, DoneWorkBeyondTheCommitPointRoundTripsThroughMetadata) {
  PartitionOffsets p(100);
  for (int o = 100; o < 120; ++o) (void)p.track(o);
  p.complete(103);
  p.complete(117);
  p.complete(100);
  EXPECT_EQ(p.nextCommit(), 101);
  const std::string md = p.metadata();
  ASSERT_FALSE(md.empty());
  auto done = PartitionOffsets::decodeMetadata(md, 101);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(*done, (std::set<std::int64_t>{103, 117}));
  EXPECT_FALSE(PartitionOffsets::decodeMetadata(md, 100).has_value()) << "metadata for another commit point";
  EXPECT_FALSE(PartitionOffsets::decodeMetadata("something else", 101).has_value());

  // A restart skips exactly the listed offsets and still commits past them.
  PartitionOffsets restarted(101, *done);
  for (int o = 101; o < 120; ++o) EXPECT_EQ(restarted.track(o), o == 103 || o == 117) << o;
  for (int o = 101; o < 120; ++o)
    if (o != 103 && o != 117) restarted.complete(o);
  EXPECT_EQ(restarted.nextCommit(), 120);
  EXPECT_EQ(restarted.metadata(), "");
}

TEST(PartitionOffsets, RedeliveredOffsetIsSkipped) {
  PartitionOffsets p(0);
  EXPECT_FALSE(p.track(0));
  EXPECT_FALSE(p.track(1));
  EXPECT_TRUE(p.track(1));
  p.complete(0);
  p.complete(1);
  EXPECT_TRUE(p.track(0));
  EXPECT_EQ(p.nextCommit(), 2);
}

}  // namespace
}  // namespace ticketflow::stage
