#pragma once
// This process's resource use, read from the kernel: what benchmarks print next to their figures.
#include <cstddef>
#include <cstdint>

#include <sys/types.h>

namespace ticketflow {

// Resident set size now, and its peak so far (VmHWM), of this process in bytes.
std::size_t residentBytes();
std::size_t peakResidentBytes();
// User plus system CPU time this process has used, in seconds.
double processCpuSeconds();
// The same for another process (a peer a benchmark measures), from /proc/<pid>/stat, its reaped
// children included; -1 when it cannot be read.
double processCpuSeconds(pid_t pid);
// Context switches of this process so far, voluntary (a thread blocked) and involuntary.
std::int64_t processContextSwitches();

}  // namespace ticketflow
