#pragma once
// Names the calling thread, as `top -H`, `perf` and debuggers show it ("tf-call-fast",
// "tf-poll-results"): in one process running every role, which threads spend the CPU is then
// visible at a glance. Linux keeps 15 characters; longer names are cut.

#include <string_view>

namespace ticketflow {

void nameThisThread(std::string_view name);

}  // namespace ticketflow
