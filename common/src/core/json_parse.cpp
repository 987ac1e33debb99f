#include "ticketflow/core/json_parse.hpp"

#include <simdjson.h>

namespace ticketflow {
namespace {

using nlohmann::json;

json toDocument(simdjson::dom::element e) {
  using Type = simdjson::dom::element_type;
  switch (e.type()) {
    case Type::OBJECT: {
      json object = json::object();
      for (auto [key, value] : simdjson::dom::object(e)) object[std::string(key)] = toDocument(value);
      return object;
    }
    case Type::ARRAY: {
      json array = json::array();
      for (auto value : simdjson::dom::array(e)) array.push_back(toDocument(value));
      return array;
    }
    case Type::STRING: return json(std::string(std::string_view(e)));
    case Type::INT64: {
      const auto n = static_cast<std::int64_t>(e);
      return n >= 0 ? json(static_cast<std::uint64_t>(n)) : json(n);
    }
    case Type::UINT64: return json(static_cast<std::uint64_t>(e));
    case Type::DOUBLE: return json(static_cast<double>(e));
    case Type::BOOL: return json(static_cast<bool>(e));
    case Type::NULL_VALUE: return json(nullptr);
  }
  return json();
}

// Bigger texts (a model file's header, a large report) get a parser of their own, so no
// thread keeps a large buffer for the rest of its life.
constexpr std::size_t kThreadParserMaxBytes = 1 << 20;

}  // namespace

std::optional<json> parseJsonText(std::string_view text) {
  thread_local simdjson::dom::parser thread_parser;
  simdjson::dom::parser own_parser;
  simdjson::dom::parser& parser = text.size() <= kThreadParserMaxBytes ? thread_parser : own_parser;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS) return toDocument(root);
  // Refused (not JSON, or past simdjson's depth): nlohmann decides, as it always did.
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  return doc;
}

}  // namespace ticketflow
