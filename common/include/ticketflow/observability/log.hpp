#pragma once
// Structured logs: one JSON object per line (time, level, role, event, then fields such as
// trace_id and ticket_id). Ticket bodies and secrets never belong in a log: callers pass ids,
// never text, and fields named like secrets or bodies are redacted as a second line of defence.
// Thread-safe; a line is written whole.

#include <iosfwd>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ticketflow/core/clock.hpp"

namespace ticketflow::observability {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
std::optional<LogLevel> parseLogLevel(std::string_view s);
const char* logLevelName(LogLevel level);

class Logger {
 public:
  // `sink` must outlive the logger (std::cerr by default).
  Logger(std::string role, LogLevel level, std::ostream& sink, const Clock& clock = SystemClock::instance());

  bool enabled(LogLevel level) const { return level >= level_; }
  void log(LogLevel level, std::string_view event, const nlohmann::json& fields = nlohmann::json::object());
  void debug(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) {
    log(LogLevel::kDebug, event, fields);
  }
  void info(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) {
    log(LogLevel::kInfo, event, fields);
  }
  void warn(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) {
    log(LogLevel::kWarn, event, fields);
  }
  void error(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) {
    log(LogLevel::kError, event, fields);
  }

 private:
  std::string role_;
  LogLevel level_;
  std::ostream& sink_;
  const Clock& clock_;
  std::mutex mutex_;
};

}  // namespace ticketflow::observability
