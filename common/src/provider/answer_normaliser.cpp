#include "ticketflow/provider/answer_normaliser.hpp"

#include <algorithm>
#include <cctype>

#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow::provider {
namespace {

using nlohmann::json;

// The first balanced {...} in `text`, skipping braces inside JSON strings.
std::string_view firstJsonObject(std::string_view text) {
  const auto start = text.find('{');
  if (start == std::string_view::npos) return {};
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{')
      ++depth;
    else if (c == '}' && --depth == 0)
      return text.substr(start, i - start + 1);
  }
  return {};
}

// "Resolution Steps", "resolutionSteps", "resolution-steps" -> "resolution_steps".
std::string canonicalKey(const std::string& key) {
  std::string out;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (std::isupper(c) && i > 0 && std::islower(static_cast<unsigned char>(key[i - 1]))) out += '_';
    if (c == ' ' || c == '-')
      out += '_';
    else
      out += static_cast<char>(std::tolower(c));
  }
  return out;
}

std::optional<double> asConfidence(const json& v) {
  double d;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {
    std::string s = v.get<std::string>();
    const bool percent = !s.empty() && s.back() == '%';
    try {
      d = std::stod(s);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    if (percent) d /= 100;
  } else {
    return std::nullopt;
  }
  if (d > 1 && d <= 100) d /= 100;  // "85" means 85%
  if (!(d >= 0 && d <= 1)) return std::nullopt;
  return d;
}

std::optional<bool> asBool(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
  }
  return std::nullopt;
}

std::string asText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// Cuts to at most `max_chars` code points without splitting a UTF-8 sequence.
std::string clip(std::string s, std::size_t max_chars) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++chars > max_chars) return s.substr(0, i);
  }
  return s;
}

}  // namespace

Result<Answer> normaliseAnswer(std::string_view model_text) {
  const std::string_view object = firstJsonObject(model_text);
  if (object.empty()) return Error::malformed("the reply contains no complete JSON object");
  const json parsed = parseJsonText(object).value_or(json());
  if (!parsed.is_object()) return Error::malformed("the JSON object in the reply does not parse");
  json fields = json::object();
  for (const auto& [k, v] : parsed.items()) fields[canonicalKey(k)] = v;
  // Common synonyms.
  for (const auto& [alias, name] : std::vector<std::pair<const char*, const char*>>{{"steps", "resolution_steps"},
                                                                                    {"resolution", "resolution_steps"},
                                                                                    {"response", "reply"},
                                                                                    {"message", "reply"},
                                                                                    {"human_needed", "needs_human"},
                                                                                    {"escalate", "needs_human"}}) {
    if (!fields.contains(name) && fields.contains(alias)) fields[name] = fields[alias];
  }

  Answer a;
  if (!fields.contains("summary") || asText(fields["summary"]).empty())
    return Error::schema("the reply has no 'summary'");
  if (!fields.contains("reply") || asText(fields["reply"]).empty()) return Error::schema("the reply has no 'reply'");
  a.summary = clip(asText(fields["summary"]), 2000);
  a.reply = clip(asText(fields["reply"]), 20000);
  if (fields.contains("category_check")) a.category_check = clip(asText(fields["category_check"]), 200);
  if (auto it = fields.find("resolution_steps"); it != fields.end()) {
    if (it->is_array()) {
      for (const auto& step : *it)
        if (a.resolution_steps.size() < 50 && !asText(step).empty())
          a.resolution_steps.push_back(clip(asText(step), 2000));
    } else if (it->is_string()) {
      std::string text = it->get<std::string>(), line;
      for (std::size_t pos = 0; pos <= text.size(); ++pos) {
        if (pos == text.size() || text[pos] == '\n') {
          line.erase(0, line.find_first_not_of(" \t-*0123456789.)"));
          if (!line.empty() && a.resolution_steps.size() < 50) a.resolution_steps.push_back(clip(line, 2000));
          line.clear();
        } else {
          line += text[pos];
        }
      }
    }
  }
  if (fields.contains("needs_human")) {
    auto b = asBool(fields["needs_human"]);
    if (!b) return Error::schema("'needs_human' is not true or false");
    a.needs_human = *b;
  }
  if (fields.contains("needs_human_reason")) a.needs_human_reason = clip(asText(fields["needs_human_reason"]), 2000);
  if (!fields.contains("confidence")) return Error::schema("the reply has no 'confidence'");
  auto c = asConfidence(fields["confidence"]);
  if (!c) return Error::schema("'confidence' is not a number between 0 and 1");
  a.confidence = *c;

  // The contract check: what we return must be schema-valid, whatever the model sent.
  json answer = {{"summary", a.summary},
                 {"reply", a.reply},
                 {"resolution_steps", a.resolution_steps},
                 {"needs_human", a.needs_human},
                 {"confidence", a.confidence}};
  if (!a.category_check.empty()) answer["category_check"] = a.category_check;
  if (!a.needs_human_reason.empty()) answer["needs_human_reason"] = a.needs_human_reason;
  const auto errors = schema::SchemaRegistry::builtin().validate("common.schema.json#/$defs/answer", answer, 1);
  if (!errors.empty()) return Error::schema("normalised answer breaks the schema: " + errors[0].describe());
  return a;
}

std::string repairInstruction(const Error& problem) {
  return "Your previous reply could not be used: " + problem.message +
         ". Reply again with only one JSON object with the fields summary, category_check, reply, "
         "resolution_steps (a list of strings), needs_human (true or false), needs_human_reason and "
         "confidence (a number from 0 to 1). No other text.";
}

}  // namespace ticketflow::provider
