#pragma once
// TF_CHECK: an always-on invariant check for our own bugs (never for input): logs and aborts.

namespace ticketflow::detail {
[[noreturn]] void checkFailed(const char* expr, const char* file, int line, const char* msg);
}  // namespace ticketflow::detail

#define TF_CHECK(cond, msg)                                                           \
  do {                                                                                \
    if (!(cond)) ::ticketflow::detail::checkFailed(#cond, __FILE__, __LINE__, (msg)); \
  } while (false)
