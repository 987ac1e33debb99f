#include "ticketflow/core/process_stats.hpp"

#include <chrono>
#include <cmath>

#include <unistd.h>

#include <gtest/gtest.h>

namespace ticketflow {
namespace {

TEST(ProcessStats, AnotherProcesssCpuFromProcAgreesWithGetrusageForThisOne) {
  // Some CPU first, so both readings are well above a clock tick.
  volatile double sink = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (std::chrono::steady_clock::now() < until) sink = sink + std::sqrt(static_cast<double>(sink) + 1);
  const double by_rusage = processCpuSeconds();
  const double by_proc = processCpuSeconds(getpid());
  EXPECT_GT(by_proc, 0.1);
  EXPECT_NEAR(by_proc, by_rusage, 0.05);  // /proc counts in clock ticks (10 ms)
}

TEST(ProcessStats, AProcessThatIsGoneReadsAsMinusOne) {
  EXPECT_EQ(processCpuSeconds(static_cast<pid_t>(0x7ffffff0)), -1);
}

}  // namespace
}  // namespace ticketflow
