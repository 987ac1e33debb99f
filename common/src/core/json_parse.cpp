#include "ticketflow/core/json_parse.hpp"

#include <memory>
#include <mutex>
#include <vector>

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
    case Type::STRING:
      return json(std::string(std::string_view(e)));
    case Type::INT64: {
      const auto n = static_cast<std::int64_t>(e);
      return n >= 0 ? json(static_cast<std::uint64_t>(n)) : json(n);
    }
    case Type::UINT64:
      return json(static_cast<std::uint64_t>(e));
    case Type::DOUBLE:
      return json(static_cast<double>(e));
    case Type::BOOL:
      return json(static_cast<bool>(e));
    case Type::NULL_VALUE:
      return json(nullptr);
  }
  return json();
}

// Parsers keep their buffers between parses. They are shared, not one per thread: a process runs
// hundreds of call threads but only a few parse at any moment, and each parser holds tens of KiB.
// Bigger texts (a model file's header) get a parser of their own, so none keeps a large buffer.
class ParserPool {
 public:
  static constexpr std::size_t kMaxPooledBytes = 64 * 1024;
  std::unique_ptr<simdjson::dom::parser> take() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) return std::make_unique<simdjson::dom::parser>();
    auto parser = std::move(idle_.back());
    idle_.pop_back();
    return parser;
  }
  void give(std::unique_ptr<simdjson::dom::parser> parser) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(parser));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<simdjson::dom::parser>> idle_;
};

ParserPool& parsers() {
  static ParserPool pool;
  return pool;
}

std::optional<json> parseWithSimdjson(simdjson::dom::parser& parser, std::string_view text) {
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) return std::nullopt;
  return toDocument(root);
}

}  // namespace

std::optional<json> parseJsonText(std::string_view text) {
  // A raw NUL is never valid JSON (inside a string it must be escaped), and nlohmann's lexer takes
  // one for the end of input: `{ticket}\0{anything}` would pass as the ticket alone.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  std::optional<json> doc;
  if (text.size() <= ParserPool::kMaxPooledBytes) {
    auto parser = parsers().take();
    doc = parseWithSimdjson(*parser, text);
    parsers().give(std::move(parser));
  } else {
    simdjson::dom::parser own;
    doc = parseWithSimdjson(own, text);
  }
  if (doc) return doc;
  // Refused (not JSON, or past simdjson's depth): nlohmann decides, as it always did.
  json fallback = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (fallback.is_discarded()) return std::nullopt;
  return fallback;
}

}  // namespace ticketflow
