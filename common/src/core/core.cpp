#include <cctype>
#include <cstdint>
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
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kSchemaViolation:
      return "schema_violation";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kRateLimited:
      return "rate_limited";
    case ErrorCode::kBudgetExhausted:
      return "budget_exhausted";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kInternal:
      return "internal";
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
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parseRfc3339(const std::string& text) {
  int y, mo, d, h, mi, sec, consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) != 6)
    return std::nullopt;
  std::size_t pos = static_cast<std::size_t>(consumed);
  std::int64_t millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    int digits = 0;
    for (++pos; pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])); ++pos, ++digits)
      if (digits < 3) millis = millis * 10 + (text[pos] - '0');
    for (; digits < 3; ++digits) millis *= 10;
  }
  std::int64_t offset_s = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') && text[pos + 3] == ':') {
    const int oh = std::atoi(text.substr(pos + 1, 2).c_str()), om = std::atoi(text.substr(pos + 4, 2).c_str());
    offset_s = (text[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits: years past 2262 overflow it (undefined behaviour).
  if (y < 1900 || y > 2200) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const auto t = std::chrono::system_clock::from_time_t(timegm(&tm)) - std::chrono::seconds(offset_s) +
                 std::chrono::milliseconds(millis);
  return t;
}

std::optional<std::string_view> embeddedFile(std::string_view path) {
  for (const auto& f : embeddedFiles()) {
    if (f.path == path) return f.content;
  }
  return std::nullopt;
}

namespace detail {
void checkFailed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(
      stderr, "{\"level\":\"fatal\",\"event\":\"invariant_broken\",\"check\":\"%s\",\"at\":\"%s:%d\",\"msg\":\"%s\"}\n",
      expr, file, line, msg);
  std::abort();
}
}  // namespace detail

}  // namespace ticketflow
