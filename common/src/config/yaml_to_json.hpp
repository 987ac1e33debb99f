#pragma once
// YAML configuration text as JSON, for the schema and the typed Config (config_loader.cpp only).
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow {

// Turns a YAML document into JSON, substituting ${NAME} and ${NAME:-fallback} in scalars and
// resolving plain scalars by the YAML 1.2 core schema. Keeps the YAML tree, whose nodes know their
// lines, so an error found later (schema, cross-checks) can point at its line.
class YamlToJson {
  using json = nlohmann::json;

 public:
  YamlToJson(std::string file, EnvLookup env) : file_(std::move(file)), env_(env) {}

  json convert(const YAML::Node& root) {
    root_ = root;
    path_.clear();
    return convertNode(root);
  }

  // The line of the value at a JSON pointer ("/models/0/name"), or of its nearest ancestor.
  int lineOf(const std::string& pointer) const {
    YAML::Node node = root_;
    int line = node.Mark().line + 1;
    std::size_t pos = 0;
    while (pos < pointer.size() && pointer[pos] == '/') {
      const std::size_t end = std::min(pointer.find('/', pos + 1), pointer.size());
      const std::string token = unescapeToken(pointer.substr(pos + 1, end - pos - 1));
      pos = end;
      YAML::Node next;
      if (node.IsMap()) {
        for (const auto& kv : node)
          if (kv.first.IsScalar() && kv.first.Scalar() == token) next = kv.second;
      } else if (node.IsSequence() && !token.empty() && token.size() < 10 &&
                 token.find_first_not_of("0123456789") == std::string::npos && std::stoul(token) < node.size()) {
        next = node[std::stoul(token)];
      }
      if (!next.IsDefined()) break;
      node = next;
      line = node.Mark().line + 1;
    }
    return line;
  }

 private:
  static std::string unescapeToken(const std::string& token) {
    std::string out;
    for (std::size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size()) {
        out += token[i + 1] == '1' ? '/' : '~';
        ++i;
      } else {
        out += token[i];
      }
    }
    return out;
  }

  // The JSON pointer of the value being converted: built only for an error, since keys can be
  // long and a document has many values.
  std::string pointer() const {
    std::string out;
    for (const auto& segment : path_) out.append(1, '/').append(schema::escapePointerToken(segment));
    return out;
  }

  json convertNode(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return nullptr;
      case YAML::NodeType::Sequence: {
        json arr = json::array();
        std::size_t i = 0;
        for (const auto& item : node) {
          path_.push_back(std::to_string(i++));
          arr.push_back(convertNode(item));
          path_.pop_back();
        }
        return arr;
      }
      case YAML::NodeType::Map: {
        json obj = json::object();
        for (const auto& kv : node) {
          if (!kv.first.IsScalar()) fail("a mapping key must be a plain value", kv.first.Mark().line + 1);
          const std::string& key = kv.first.Scalar();
          if (!isValidUtf8(key)) fail("a key is not valid UTF-8", kv.first.Mark().line + 1);
          path_.push_back(key);
          if (obj.contains(key)) fail("duplicate field", kv.first.Mark().line + 1);
          obj[key] = convertNode(kv.second);
          path_.pop_back();
        }
        return obj;
      }
      case YAML::NodeType::Scalar:
        return scalar(node);
    }
    return nullptr;
  }

  [[noreturn]] void fail(const std::string& reason, int line) const {
    throw ConfigError(file_, schema::pointerToFieldPath(pointer()), reason, line);
  }

  // ${NAME} and ${NAME:-fallback}, scanned by hand: std::regex recurses per character and a long
  // scalar would overflow the stack.
  std::string substitute(const std::string& text, int line) const {
    std::string out;
    std::size_t pos = 0;
    while (true) {
      const std::size_t open = text.find("${", pos);
      out.append(text, pos, open == std::string::npos ? std::string::npos : open - pos);
      if (open == std::string::npos) break;
      std::size_t i = open + 2;
      const std::size_t name_begin = i;
      auto nameChar = [](char c, bool first) {
        return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
               (!first && std::isdigit(static_cast<unsigned char>(c)));
      };
      while (i < text.size() && nameChar(text[i], i == name_begin)) ++i;
      const std::string name = text.substr(name_begin, i - name_begin);
      const bool has_fallback = text.compare(i, 2, ":-") == 0;
      const std::size_t close = text.find('}', has_fallback ? i + 2 : i);
      if (name.empty() || close == std::string::npos || (!has_fallback && close != i))
        fail("malformed ${...} reference", line);
      const std::string fallback = has_fallback ? text.substr(i + 2, close - i - 2) : std::string();
      auto value = env_ ? env_(name) : std::nullopt;
      if (!value || (value->empty() && has_fallback)) {
        if (!has_fallback)
          fail("environment variable " + name + " is not set (write ${" + name + ":-default} for a fallback)", line);
        value = fallback;
      }
      out += *value;
      pos = close + 1;
    }
    return out;
  }

  // YAML 1.2 core schema numbers, without std::regex (see substitute).
  static bool isInteger(const std::string& t) {
    const std::size_t i = !t.empty() && (t[0] == '+' || t[0] == '-') ? 1 : 0;
    return i < t.size() && t.find_first_not_of("0123456789", i) == std::string::npos;
  }
  static bool isFloat(const std::string& t) {
    std::size_t i = !t.empty() && (t[0] == '+' || t[0] == '-') ? 1 : 0;
    auto digits = [&] {
      const std::size_t from = i;
      while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
      return i - from;
    };
    const std::size_t whole = digits();
    std::size_t fraction = 0;
    if (i < t.size() && t[i] == '.') {
      ++i;
      fraction = digits();
    }
    if (whole == 0 && fraction == 0) return false;
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      if (digits() == 0) return false;
    }
    return i == t.size();
  }

  json scalar(const YAML::Node& node) const {
    const std::string& raw = node.Scalar();
    const int line = node.Mark().line + 1;
    if (!isValidUtf8(raw)) fail("not valid UTF-8", line);
    const bool had_reference = env_ && raw.find("${") != std::string::npos;
    const std::string text = had_reference ? substitute(raw, line) : raw;
    if (node.Tag() == "!" || (had_reference && text.empty())) return text;  // quoted, or emptied by ${}
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    if (isInteger(text)) {
      try {
        return std::stoll(text);
      } catch (const std::out_of_range&) {
        fail("integer out of range", line);
      }
    }
    if (isFloat(text)) {
      try {
        return std::stod(text);
      } catch (const std::out_of_range&) {
        fail("number out of range", line);
      }
    }
    return text;
  }

  std::string file_;
  EnvLookup env_;
  YAML::Node root_;
  std::vector<std::string> path_;  // keys and indices down to the value being converted
};

}  // namespace ticketflow
