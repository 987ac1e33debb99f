#include "ticketflow/observability/log.hpp"

#include <algorithm>
#include <array>
#include <ostream>

#include "ticketflow/core/json_writer.hpp"

namespace ticketflow::observability {
namespace {

// Field names whose values are never written, whatever a caller passes.
bool sensitive(const std::string& key) {
  std::string k = key;
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::array<const char*, 9> kWords = {"body",          "text",     "subject", "api_key", "apikey",
                                                    "authorization", "password", "secret",  "token"};
  for (const char* w : kWords)
    if (k.find(w) != std::string::npos) return true;
  return false;
}

void writeRedacted(JsonWriter& w, const nlohmann::json& v);

// An object's members into the object `w` has open, sensitive keys' values replaced; keys in
// `skip` are left out.
void writeRedactedMembers(JsonWriter& w, const nlohmann::json& object,
                          std::initializer_list<std::string_view> skip = {}) {
  for (const auto& [k, member] : object.items()) {
    if (std::find(skip.begin(), skip.end(), k) != skip.end()) continue;
    w.key(k);
    if (sensitive(k))
      w.value("[redacted]");
    else
      writeRedacted(w, member);
  }
}

// Writes `v` with the values of sensitive keys in every nested object replaced.
void writeRedacted(JsonWriter& w, const nlohmann::json& v) {
  using Type = nlohmann::json::value_t;
  switch (v.type()) {
    case Type::object:
      w.beginObject();
      writeRedactedMembers(w, v);
      w.endObject();
      return;
    case Type::string:
      w.value(v.get_ref<const std::string&>());
      return;
    case Type::boolean:
      w.value(v.get<bool>());
      return;
    case Type::number_integer:
      w.value(v.get<std::int64_t>());
      return;
    case Type::number_unsigned:
      w.value(v.get<std::uint64_t>());
      return;
    case Type::number_float:
      w.value(v.get<double>());
      return;
    case Type::null:
      w.null();
      return;
    default:
      w.value(v);
      return;  // arrays as they are
  }
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
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

Logger::Logger(std::string role, LogLevel level, std::ostream& sink, const Clock& clock)
    : role_(std::move(role)), level_(level), sink_(sink), clock_(clock) {}

void Logger::log(LogLevel level, std::string_view event, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  JsonWriter w;
  w.beginObject().field("time", formatRfc3339(clock_.now())).field("level", logLevelName(level));
  w.field("role", role_).field("event", event);
  if (fields.is_object()) writeRedactedMembers(w, fields, {"time", "level", "role", "event"});  // not the line's own
  std::string text = w.endObject().take();
  text += '\n';
  std::lock_guard lock(mutex_);
  sink_ << text << std::flush;
}

}  // namespace ticketflow::observability
