#include "ticketflow/schema/validator.hpp"

#include <cmath>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>

#include "ticketflow/core/embedded.hpp"

namespace ticketflow::schema {
namespace {

using nlohmann::json;

const std::set<std::string>& supportedKeywords() {
  static const std::set<std::string> k = {
      "$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "default", "examples",
      "deprecated", "readOnly", "writeOnly", "type", "enum", "const", "properties",
      "patternProperties", "additionalProperties", "required", "propertyNames", "minProperties",
      "maxProperties", "dependentRequired", "items", "prefixItems", "minItems", "maxItems",
      "uniqueItems", "contains", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
      "multipleOf", "minLength", "maxLength", "pattern", "format", "allOf", "anyOf", "oneOf", "not",
      "if", "then", "else"};
  return k;
}

// Keywords whose value is a map of name -> subschema (the names are not keywords).
bool isSchemaMap(const std::string& k) {
  return k == "properties" || k == "patternProperties" || k == "$defs";
}
bool isSchemaList(const std::string& k) {
  return k == "allOf" || k == "anyOf" || k == "oneOf" || k == "prefixItems";
}
bool isSubschema(const std::string& k) {
  return k == "additionalProperties" || k == "items" || k == "not" || k == "if" || k == "then" ||
         k == "else" || k == "propertyNames" || k == "contains";
}

void checkKeywords(const json& schema, const std::string& where) {
  if (schema.is_boolean()) return;
  if (!schema.is_object()) throw std::invalid_argument("schema at " + where + " is not an object");
  for (const auto& [key, value] : schema.items()) {
    if (!supportedKeywords().count(key)) {
      throw std::invalid_argument("unsupported JSON Schema keyword '" + key + "' at " + where);
    }
    if (isSchemaMap(key)) {
      for (const auto& [name, sub] : value.items()) checkKeywords(sub, where + "/" + key + "/" + name);
    } else if (isSchemaList(key)) {
      for (std::size_t i = 0; i < value.size(); ++i) checkKeywords(value[i], where + "/" + key + "/" + std::to_string(i));
    } else if (isSubschema(key)) {
      checkKeywords(value, where + "/" + key);
    }
  }
}

std::string escapePointerToken(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string typeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "unknown";
  }
}

bool isInteger(const json& v) {
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return false;
}

bool hasType(const json& v, const std::string& t) {
  if (t == "integer") return isInteger(v);
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return false;
}

// JSON equality where 1 == 1.0, as JSON Schema requires.
bool jsonEqual(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      auto it = b.find(k);
      if (it == b.end() || !jsonEqual(v, *it)) return false;
    }
    return true;
  }
  return a == b;
}

std::size_t codePointCount(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

bool isDigits(const std::string& s, std::size_t pos, std::size_t len) {
  if (pos + len > s.size()) return false;
  for (std::size_t i = pos; i < pos + len; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

int num(const std::string& s, std::size_t pos, std::size_t len) { return std::stoi(s.substr(pos, len)); }

bool validDate(const std::string& s) {
  if (s.size() != 10 || !isDigits(s, 0, 4) || s[4] != '-' || !isDigits(s, 5, 2) || s[7] != '-' || !isDigits(s, 8, 2))
    return false;
  const int y = num(s, 0, 4), m = num(s, 5, 2), d = num(s, 8, 2);
  if (m < 1 || m > 12 || d < 1) return false;
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + ((m == 2 && leap) ? 1 : 0);
}

// RFC 3339 date-time, as ajv-formats checks it (full-date "T" full-time, offset required).
bool validDateTime(const std::string& s) {
  if (s.size() < 20) return false;
  if (!validDate(s.substr(0, 10))) return false;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return false;
  if (!isDigits(s, 11, 2) || s[13] != ':' || !isDigits(s, 14, 2) || s[16] != ':' || !isDigits(s, 17, 2)) return false;
  const int hh = num(s, 11, 2), mm = num(s, 14, 2), ss = num(s, 17, 2);
  if (hh > 23 || mm > 59 || ss > 60) return false;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;
  if (s[pos] == 'Z' || s[pos] == 'z') return pos + 1 == s.size();
  if (s[pos] != '+' && s[pos] != '-') return false;
  if (!isDigits(s, pos + 1, 2) || pos + 3 >= s.size() || s[pos + 3] != ':' || !isDigits(s, pos + 4, 2)) return false;
  if (num(s, pos + 1, 2) > 23 || num(s, pos + 4, 2) > 59) return false;
  return pos + 6 == s.size();
}

bool validFormat(const std::string& format, const std::string& s) {
  if (format == "date-time") return validDateTime(s);
  if (format == "date") return validDate(s);
  if (format == "email") {
    static const std::regex re(R"(^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$)");
    return std::regex_match(s, re);
  }
  if (format == "uri") {
    static const std::regex re(R"(^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*$)");
    return std::regex_match(s, re);
  }
  if (format == "uuid") {
    static const std::regex re(R"(^(?:urn:uuid:)?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$)");
    return std::regex_match(s, re);
  }
  return true;  // unknown formats are annotations only
}

}  // namespace

std::string ValidationError::describe() const { return path.empty() ? reason : path + ": " + reason; }

std::string pointerToFieldPath(const std::string& pointer) {
  std::string out;
  std::size_t pos = 0;
  while (pos < pointer.size()) {
    const std::size_t next = pointer.find('/', pos + 1);
    std::string token = pointer.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    for (std::size_t i; (i = token.find("~1")) != std::string::npos;) token.replace(i, 2, "/");
    for (std::size_t i; (i = token.find("~0")) != std::string::npos;) token.replace(i, 2, "~");
    const bool index = !token.empty() && token.find_first_not_of("0123456789") == std::string::npos;
    if (index) out += "[" + token + "]";
    else out += (out.empty() ? "" : ".") + token;
    pos = next == std::string::npos ? pointer.size() : next;
  }
  return out;
}

struct SchemaRegistry::Impl {
  std::map<std::string, json> schemas;  // by name and by $id
  mutable std::map<std::string, std::regex> regexes;
  mutable std::mutex regex_mutex;

  const std::regex& regexFor(const std::string& pattern) const {
    std::lock_guard lock(regex_mutex);
    auto it = regexes.find(pattern);
    if (it == regexes.end()) it = regexes.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
    return it->second;
  }

  // Resolves "$ref" relative to the document `root`.
  std::pair<const json*, const json*> resolve(const std::string& ref, const json* root) const {
    std::string doc_part = ref, fragment;
    if (auto hash = ref.find('#'); hash != std::string::npos) {
      doc_part = ref.substr(0, hash);
      fragment = ref.substr(hash + 1);
    }
    const json* doc = root;
    if (!doc_part.empty()) {
      auto it = schemas.find(doc_part);
      if (it == schemas.end()) {
        // Allow "ticket.schema.json" to match an $id ending in it.
        for (const auto& [key, value] : schemas) {
          if (key.size() >= doc_part.size() && key.compare(key.size() - doc_part.size(), doc_part.size(), doc_part) == 0) {
            it = schemas.find(key);
            break;
          }
        }
      }
      if (it == schemas.end()) throw std::invalid_argument("unresolvable $ref " + ref);
      doc = &it->second;
    }
    const json* target = doc;
    if (!fragment.empty()) target = &doc->at(json::json_pointer(fragment));
    return {target, doc};
  }

  struct Ctx {
    std::vector<ValidationError>* errors;
    std::size_t max_errors;
    bool full() const { return errors->size() >= max_errors; }
  };

  void fail(Ctx& ctx, const std::string& path, std::string reason) const {
    if (!ctx.full()) ctx.errors->push_back({path, std::move(reason)});
  }

  bool valid(const json& schema, const json& v, const json* root) const {
    std::vector<ValidationError> errs;
    Ctx c{&errs, 1};
    check(schema, v, "", root, c);
    return errs.empty();
  }

  void check(const json& schema, const json& v, const std::string& path, const json* root, Ctx& ctx) const {
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) fail(ctx, path, "no value is allowed here");
      return;
    }
    if (auto it = schema.find("$ref"); it != schema.end()) {
      auto [target, doc] = resolve(it->get<std::string>(), root);
      check(*target, v, path, doc, ctx);
    }
    if (auto it = schema.find("type"); it != schema.end()) {
      bool ok = false;
      std::string expected;
      if (it->is_string()) {
        ok = hasType(v, it->get<std::string>());
        expected = it->get<std::string>();
      } else {
        for (const auto& t : *it) {
          ok = ok || hasType(v, t.get<std::string>());
          expected += (expected.empty() ? "" : " or ") + t.get<std::string>();
        }
      }
      if (!ok) {
        fail(ctx, path, "expected " + expected + ", got " + typeName(v));
        return;  // further keyword errors would only repeat this one
      }
    }
    if (auto it = schema.find("enum"); it != schema.end()) {
      bool found = false;
      for (const auto& e : *it) found = found || jsonEqual(e, v);
      if (!found) fail(ctx, path, "must be one of " + it->dump() + ", got " + v.dump());
    }
    if (auto it = schema.find("const"); it != schema.end()) {
      if (!jsonEqual(*it, v)) fail(ctx, path, "must be " + it->dump());
    }
    if (v.is_object()) checkObject(schema, v, path, root, ctx);
    if (v.is_array()) checkArray(schema, v, path, root, ctx);
    if (v.is_number()) checkNumber(schema, v, path, ctx);
    if (v.is_string()) checkString(schema, v, path, ctx);
    checkCombinators(schema, v, path, root, ctx);
  }

  void checkObject(const json& schema, const json& v, const std::string& path, const json* root, Ctx& ctx) const {
    if (auto it = schema.find("required"); it != schema.end()) {
      for (const auto& name : *it) {
        if (!v.contains(name.get<std::string>()))
          fail(ctx, path, "missing required field '" + name.get<std::string>() + "'");
      }
    }
    if (auto it = schema.find("dependentRequired"); it != schema.end()) {
      for (const auto& [name, deps] : it->items()) {
        if (!v.contains(name)) continue;
        for (const auto& d : deps)
          if (!v.contains(d.get<std::string>()))
            fail(ctx, path, "field '" + d.get<std::string>() + "' is required when '" + name + "' is set");
      }
    }
    if (auto it = schema.find("minProperties"); it != schema.end() && v.size() < it->get<std::size_t>())
      fail(ctx, path, "must have at least " + it->dump() + " fields");
    if (auto it = schema.find("maxProperties"); it != schema.end() && v.size() > it->get<std::size_t>())
      fail(ctx, path, "must have at most " + it->dump() + " fields");
    const json* props = schema.contains("properties") ? &schema["properties"] : nullptr;
    const json* patterns = schema.contains("patternProperties") ? &schema["patternProperties"] : nullptr;
    const json* additional = schema.contains("additionalProperties") ? &schema["additionalProperties"] : nullptr;
    const json* names = schema.contains("propertyNames") ? &schema["propertyNames"] : nullptr;
    for (const auto& [key, value] : v.items()) {
      const std::string child = path + "/" + escapePointerToken(key);
      if (names && !valid(*names, key, root)) fail(ctx, child, "field name '" + key + "' is not allowed");
      bool matched = false;
      if (props) {
        if (auto p = props->find(key); p != props->end()) {
          matched = true;
          check(*p, value, child, root, ctx);
        }
      }
      if (patterns) {
        for (const auto& [pattern, sub] : patterns->items()) {
          if (std::regex_search(key, regexFor(pattern))) {
            matched = true;
            check(sub, value, child, root, ctx);
          }
        }
      }
      if (!matched && additional) {
        if (additional->is_boolean() && !additional->get<bool>()) fail(ctx, child, "unknown field '" + key + "'");
        else check(*additional, value, child, root, ctx);
      }
    }
  }

  void checkArray(const json& schema, const json& v, const std::string& path, const json* root, Ctx& ctx) const {
    if (auto it = schema.find("minItems"); it != schema.end() && v.size() < it->get<std::size_t>())
      fail(ctx, path, "must have at least " + it->dump() + " items");
    if (auto it = schema.find("maxItems"); it != schema.end() && v.size() > it->get<std::size_t>())
      fail(ctx, path, "must have at most " + it->dump() + " items");
    std::size_t prefix = 0;
    if (auto it = schema.find("prefixItems"); it != schema.end()) {
      prefix = it->size();
      for (std::size_t i = 0; i < prefix && i < v.size(); ++i) check((*it)[i], v[i], path + "/" + std::to_string(i), root, ctx);
    }
    if (auto it = schema.find("items"); it != schema.end()) {
      for (std::size_t i = prefix; i < v.size(); ++i) {
        if (it->is_boolean() && !it->get<bool>()) fail(ctx, path + "/" + std::to_string(i), "no more items are allowed");
        else check(*it, v[i], path + "/" + std::to_string(i), root, ctx);
      }
    }
    if (auto it = schema.find("uniqueItems"); it != schema.end() && it->get<bool>()) {
      for (std::size_t i = 0; i < v.size(); ++i)
        for (std::size_t j = i + 1; j < v.size(); ++j)
          if (jsonEqual(v[i], v[j])) {
            fail(ctx, path, "items " + std::to_string(i) + " and " + std::to_string(j) + " are duplicates");
            return;
          }
    }
    if (auto it = schema.find("contains"); it != schema.end()) {
      bool any = false;
      for (const auto& item : v) any = any || valid(*it, item, root);
      if (!any) fail(ctx, path, "must contain at least one matching item");
    }
  }

  void checkNumber(const json& schema, const json& v, const std::string& path, Ctx& ctx) const {
    const double d = v.get<double>();
    if (auto it = schema.find("minimum"); it != schema.end() && d < it->get<double>())
      fail(ctx, path, "must be >= " + it->dump() + ", got " + v.dump());
    if (auto it = schema.find("maximum"); it != schema.end() && d > it->get<double>())
      fail(ctx, path, "must be <= " + it->dump() + ", got " + v.dump());
    if (auto it = schema.find("exclusiveMinimum"); it != schema.end() && d <= it->get<double>())
      fail(ctx, path, "must be > " + it->dump() + ", got " + v.dump());
    if (auto it = schema.find("exclusiveMaximum"); it != schema.end() && d >= it->get<double>())
      fail(ctx, path, "must be < " + it->dump() + ", got " + v.dump());
    if (auto it = schema.find("multipleOf"); it != schema.end()) {
      const double q = d / it->get<double>();
      if (std::fabs(q - std::round(q)) > 1e-9) fail(ctx, path, "must be a multiple of " + it->dump());
    }
  }

  void checkString(const json& schema, const json& v, const std::string& path, Ctx& ctx) const {
    const auto& s = v.get_ref<const std::string&>();
    if (auto it = schema.find("minLength"); it != schema.end() && codePointCount(s) < it->get<std::size_t>())
      fail(ctx, path, "must be at least " + it->dump() + " characters long");
    if (auto it = schema.find("maxLength"); it != schema.end() && codePointCount(s) > it->get<std::size_t>())
      fail(ctx, path, "must be at most " + it->dump() + " characters long");
    if (auto it = schema.find("pattern"); it != schema.end()) {
      if (!std::regex_search(s, regexFor(it->get<std::string>())))
        fail(ctx, path, "does not match pattern " + it->get<std::string>());
    }
    if (auto it = schema.find("format"); it != schema.end()) {
      if (!validFormat(it->get<std::string>(), s)) fail(ctx, path, "is not a valid " + it->get<std::string>());
    }
  }

  void checkCombinators(const json& schema, const json& v, const std::string& path, const json* root, Ctx& ctx) const {
    if (auto it = schema.find("allOf"); it != schema.end()) {
      for (const auto& sub : *it) check(sub, v, path, root, ctx);
    }
    if (auto it = schema.find("anyOf"); it != schema.end()) {
      bool any = false;
      for (const auto& sub : *it) any = any || valid(sub, v, root);
      if (!any) {
        std::string detail;
        if (!it->empty()) {
          std::vector<ValidationError> first;
          Ctx c{&first, 1};
          check((*it)[0], v, path, root, c);
          if (!first.empty()) detail = " (first form: " + first[0].describe() + ")";
        }
        fail(ctx, path, "matches none of the allowed forms" + detail);
      }
    }
    if (auto it = schema.find("oneOf"); it != schema.end()) {
      int count = 0;
      for (const auto& sub : *it) count += valid(sub, v, root) ? 1 : 0;
      if (count != 1) fail(ctx, path, count == 0 ? "matches none of the allowed forms" : "matches more than one allowed form");
    }
    if (auto it = schema.find("not"); it != schema.end()) {
      if (valid(*it, v, root)) fail(ctx, path, "matches a form that is not allowed");
    }
    if (auto it = schema.find("if"); it != schema.end()) {
      if (valid(*it, v, root)) {
        if (auto t = schema.find("then"); t != schema.end()) check(*t, v, path, root, ctx);
      } else if (auto e = schema.find("else"); e != schema.end()) {
        check(*e, v, path, root, ctx);
      }
    }
  }
};

SchemaRegistry::SchemaRegistry() : impl_(std::make_unique<Impl>()) {}
SchemaRegistry::~SchemaRegistry() = default;

void SchemaRegistry::add(const std::string& name, nlohmann::json schema) {
  checkKeywords(schema, name + "#");
  if (schema.is_object() && schema.contains("$id")) impl_->schemas[schema["$id"].get<std::string>()] = schema;
  impl_->schemas[name] = std::move(schema);
}

bool SchemaRegistry::has(const std::string& name) const { return impl_->schemas.count(name) > 0; }

std::vector<ValidationError> SchemaRegistry::validate(const std::string& name, const nlohmann::json& doc,
                                                      std::size_t max_errors) const {
  std::vector<ValidationError> errors;
  Impl::Ctx ctx{&errors, max_errors};
  if (name.find('#') != std::string::npos) {  // a part of a schema, e.g. "common.schema.json#/$defs/answer"
    auto [target, root] = impl_->resolve(name, nullptr);
    impl_->check(*target, doc, "", root, ctx);
    return errors;
  }
  auto it = impl_->schemas.find(name);
  if (it == impl_->schemas.end()) throw std::invalid_argument("no schema named " + name);
  impl_->check(it->second, doc, "", &it->second, ctx);
  return errors;
}

const SchemaRegistry& SchemaRegistry::builtin() {
  static const SchemaRegistry* registry = [] {
    auto* r = new SchemaRegistry();
    for (const auto& f : embeddedFiles()) {
      constexpr std::string_view kPrefix = "schemas/";
      if (f.path.substr(0, kPrefix.size()) != kPrefix || !f.path.ends_with(".schema.json")) continue;
      r->add(std::string(f.path.substr(kPrefix.size())), nlohmann::json::parse(f.content));
    }
    return r;
  }();
  return *registry;
}

}  // namespace ticketflow::schema
