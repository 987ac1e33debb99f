// The stage engine's pure rooms, without Kafka: the key scheduler and the backpressure window.
#include <gtest/gtest.h>

#include "ticketflow/stage/backpressure.hpp"
#include "ticketflow/stage/key_scheduler.hpp"

namespace ticketflow::stage {
namespace {

TEST(KeyScheduler, SameKeyRunsOneAtATimeInAdmissionOrder) {
  KeyScheduler keys;
  EXPECT_TRUE(keys.admit(1, "T-1"));
  EXPECT_FALSE(keys.admit(2, "T-1"));
  EXPECT_FALSE(keys.admit(3, "T-1"));
  EXPECT_TRUE(keys.admit(4, "T-2"));  // another key is not held behind T-1
  EXPECT_EQ(keys.activeKeys(), 2u);
  EXPECT_EQ(keys.finish(1, "T-1"), 2u);
  EXPECT_EQ(keys.finish(2, "T-1"), 3u);
  EXPECT_EQ(keys.finish(3, "T-1"), std::nullopt);
  EXPECT_EQ(keys.finish(4, "T-2"), std::nullopt);
  EXPECT_EQ(keys.activeKeys(), 0u);
}

TEST(KeyScheduler, KeylessMessagesAreOrderedAgainstNothing) {
  KeyScheduler keys;
  EXPECT_TRUE(keys.admit(1, ""));
  EXPECT_TRUE(keys.admit(2, ""));
  EXPECT_EQ(keys.activeKeys(), 0u);
  EXPECT_EQ(keys.finish(2, ""), std::nullopt);
  EXPECT_EQ(keys.finish(1, ""), std::nullopt);
}

TEST(KeyScheduler, AbandoningTheRunningFrontHandsTheKeyToTheNextWaiting) {
  KeyScheduler keys;
  keys.admit(1, "A");
  keys.admit(2, "A");
  keys.admit(3, "A");
  keys.admit(4, "B");
  keys.admit(5, "C");
  keys.admit(6, "C");
  // 1 (A's front) and 3 (waiting) and all of B go; C loses only its waiting message.
  const auto fronts = keys.abandon({{1, "A"}, {3, "A"}, {4, "B"}, {6, "C"}, {7, ""}});
  EXPECT_EQ(fronts, (std::vector<std::uint64_t>{2, 5}));  // by key: A's new front, C's unchanged one
  EXPECT_EQ(keys.activeKeys(), 2u);
  EXPECT_EQ(keys.finish(2, "A"), std::nullopt);
  EXPECT_EQ(keys.finish(5, "C"), std::nullopt);
  EXPECT_EQ(keys.activeKeys(), 0u);
}

TEST(KeyScheduler, FinishingAMessageThatIsNotItsKeysFrontIsABug) {
  KeyScheduler keys;
  keys.admit(1, "A");
  keys.admit(2, "A");
  EXPECT_DEATH(keys.finish(2, "A"), "front of its key queue");
}

using Action = Backpressure::Action;
using std::chrono::milliseconds;

TEST(Backpressure, AFullWindowWaitsThroughTheGraceThenPausesAll) {
  Backpressure window(64);
  const Backpressure::Time t0{};
  EXPECT_EQ(window.check(63, t0), Action::kPoll);
  EXPECT_EQ(window.check(64, t0), Action::kWait);
  EXPECT_EQ(window.check(64, t0 + milliseconds(99)), Action::kWait);
  EXPECT_EQ(window.check(70, t0 + Backpressure::kPauseGrace), Action::kPauseAll);
  EXPECT_TRUE(window.pausedAll());
  // Paused: polling only serves rebalances until the window drains by a sixteenth (4 of 64).
  EXPECT_EQ(window.check(61, t0 + milliseconds(200)), Action::kPoll);
  EXPECT_TRUE(window.pausedAll());
  EXPECT_EQ(window.check(60, t0 + milliseconds(210)), Action::kResumeAll);
  EXPECT_FALSE(window.pausedAll());
}

TEST(Backpressure, RoomInTheWindowRestartsTheGrace) {
  Backpressure window(10);
  const Backpressure::Time t0{};
  EXPECT_EQ(window.check(10, t0), Action::kWait);
  EXPECT_EQ(window.check(9, t0 + milliseconds(90)), Action::kPoll);
  // Full again: the grace counts from now, not from the first time it was full.
  EXPECT_EQ(window.check(10, t0 + milliseconds(120)), Action::kWait);
  EXPECT_EQ(window.check(10, t0 + milliseconds(219)), Action::kWait);
  EXPECT_EQ(window.check(10, t0 + milliseconds(220)), Action::kPauseAll);
}

TEST(Backpressure, AWindowOfOneResumesWhenEmpty) {
  Backpressure window(1);
  const Backpressure::Time t0{};
  EXPECT_EQ(window.check(1, t0), Action::kWait);
  EXPECT_EQ(window.check(1, t0 + milliseconds(100)), Action::kPauseAll);
  EXPECT_EQ(window.check(1, t0 + milliseconds(150)), Action::kPoll);
  EXPECT_EQ(window.check(0, t0 + milliseconds(160)), Action::kResumeAll);
}

}  // namespace
}  // namespace ticketflow::stage
