#pragma once
// This process's resource use, read from the kernel: what benchmarks print next to their figures.
#include <cstddef>
#include <cstdint>

namespace ticketflow {

// Resident set size now, and its peak so far (VmHWM), of this process in bytes.
std::size_t residentBytes();
std::size_t peakResidentBytes();
// User plus system CPU time this process has used, in seconds.
double processCpuSeconds();
// Context switches of this process so far, voluntary (a thread blocked) and involuntary.
std::int64_t processContextSwitches();

}  // namespace ticketflow
