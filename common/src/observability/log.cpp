#include "ticketflow/observability/log.hpp"

#include <algorithm>
#include <array>
#include <ostream>

namespace ticketflow::observability {
namespace {

// Field names whose values are never written, whatever a caller passes.
bool sensitive(const std::string& key) {
  std::string k = key;
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::array<const char*, 9> kWords = {"body", "text", "subject", "api_key", "apikey", "authorization",
                                                    "password", "secret", "token"};
  for (const char* w : kWords)
    if (k.find(w) != std::string::npos) return true;
  return false;
}

nlohmann::json redact(const nlohmann::json& fields) {
  if (!fields.is_object()) return fields;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : fields.items()) out[k] = sensitive(k) ? nlohmann::json("[redacted]") : redact(v);
  return out;
}

}  // namespace

std::optional<LogLevel> parseLogLevel(std::string_view s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return std::nullopt;
}

const char* logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

Logger::Logger(std::string role, LogLevel level, std::ostream& sink, const Clock& clock)
    : role_(std::move(role)), level_(level), sink_(sink), clock_(clock) {}

void Logger::log(LogLevel level, std::string_view event, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  nlohmann::json line = {{"time", formatRfc3339(clock_.now())}, {"level", logLevelName(level)}, {"role", role_},
                         {"event", std::string(event)}};
  const nlohmann::json safe = redact(fields);  // a named value: items() must not outlive it
  for (const auto& [k, v] : safe.items()) line[k] = v;
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  sink_ << text << std::flush;
}

}  // namespace ticketflow::observability
