#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "ticketflow/core/check.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/result.hpp"

namespace ticketflow {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kSchemaViolation: return "schema_violation";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kRateLimited: return "rate_limited";
    case ErrorCode::kBudgetExhausted: return "budget_exhausted";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

std::string formatRfc3339(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::optional<std::string_view> embeddedFile(std::string_view path) {
  for (const auto& f : embeddedFiles()) {
    if (f.path == path) return f.content;
  }
  return std::nullopt;
}

namespace detail {
void checkFailed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "{\"level\":\"fatal\",\"event\":\"invariant_broken\",\"check\":\"%s\",\"at\":\"%s:%d\",\"msg\":\"%s\"}\n",
               expr, file, line, msg);
  std::abort();
}
}  // namespace detail

}  // namespace ticketflow
