#include "ticketflow/schema/validator.hpp"

#include <cmath>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/utf8.hpp"
#include "value_checks.hpp"

namespace ticketflow::schema {
namespace {

using nlohmann::json;
using value_checks::isInteger;
using value_checks::jsonEqual;
using value_checks::regexFinds;
using value_checks::typeName;
using value_checks::validFormat;

const std::set<std::string>& supportedKeywords() {
  static const std::set<std::string> k = {"$schema",
                                          "$id",
                                          "$ref",
                                          "$defs",
                                          "$comment",
                                          "title",
                                          "description",
                                          "default",
                                          "examples",
                                          "deprecated",
                                          "readOnly",
                                          "writeOnly",
                                          "type",
                                          "enum",
                                          "const",
                                          "properties",
                                          "patternProperties",
                                          "additionalProperties",
                                          "required",
                                          "propertyNames",
                                          "minProperties",
                                          "maxProperties",
                                          "dependentRequired",
                                          "items",
                                          "prefixItems",
                                          "minItems",
                                          "maxItems",
                                          "uniqueItems",
                                          "contains",
                                          "minimum",
                                          "maximum",
                                          "exclusiveMinimum",
                                          "exclusiveMaximum",
                                          "multipleOf",
                                          "minLength",
                                          "maxLength",
                                          "pattern",
                                          "format",
                                          "allOf",
                                          "anyOf",
                                          "oneOf",
                                          "not",
                                          "if",
                                          "then",
                                          "else"};
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
  return k == "additionalProperties" || k == "items" || k == "not" || k == "if" || k == "then" || k == "else" ||
         k == "propertyNames" || k == "contains";
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
      for (std::size_t i = 0; i < value.size(); ++i)
        checkKeywords(value[i], where + "/" + key + "/" + std::to_string(i));
    } else if (isSubschema(key)) {
      checkKeywords(value, where + "/" + key);
    }
  }
}

}  // namespace

std::string escapePointerToken(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string ValidationError::describe() const {
  return path.empty() ? reason : path + ": " + reason;
}

std::string pointerToFieldPath(const std::string& pointer) {
  std::string out;
  std::size_t pos = 0;
  while (pos < pointer.size()) {
    const std::size_t next = pointer.find('/', pos + 1);
    std::string token = pointer.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    for (std::size_t i; (i = token.find("~1")) != std::string::npos;) token.replace(i, 2, 1, '/');
    for (std::size_t i; (i = token.find("~0")) != std::string::npos;) token.replace(i, 2, 1, '~');
    const bool index = !token.empty() && token.find_first_not_of("0123456789") == std::string::npos;
    if (index)
      out += "[" + token + "]";
    else
      out += (out.empty() ? "" : ".") + token;
    pos = next == std::string::npos ? pointer.size() : next;
  }
  return out;
}

namespace {

// Where a value sits in the document, built only when an error is reported: validation of a
// valid document allocates no paths.
struct Path {
  const Path* parent = nullptr;      // null only for the root
  const std::string* key = nullptr;  // an object member; null for an array item or the root
  std::size_t index = 0;

  Path member(const std::string& k) const { return {this, &k, 0}; }
  Path item(std::size_t i) const { return {this, nullptr, i}; }
  std::string str() const {
    std::vector<const Path*> chain;
    for (const Path* p = this; p->parent; p = p->parent) chain.push_back(p);
    std::string out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
      out.append(1, '/').append((*it)->key ? escapePointerToken(*(*it)->key) : std::to_string((*it)->index));
    return out;
  }
};

enum TypeBit : unsigned { kNull = 1, kBoolean = 2, kInteger = 4, kNumber = 8, kString = 16, kArray = 32, kObject = 64 };

unsigned typeBit(const std::string& t) {
  if (t == "null") return kNull;
  if (t == "boolean") return kBoolean;
  if (t == "integer") return kInteger;
  if (t == "number") return kNumber;
  if (t == "string") return kString;
  if (t == "array") return kArray;
  if (t == "object") return kObject;
  return 0;
}

bool matchesTypes(const json& v, unsigned bits) {
  switch (v.type()) {
    case json::value_t::null:
      return bits & kNull;
    case json::value_t::boolean:
      return bits & kBoolean;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return bits & (kInteger | kNumber);
    case json::value_t::number_float:
      return (bits & kNumber) || ((bits & kInteger) && isInteger(v));
    case json::value_t::string:
      return bits & kString;
    case json::value_t::array:
      return bits & kArray;
    case json::value_t::object:
      return bits & kObject;
    default:
      return false;
  }
}

// One schema object's keywords, looked up once when the schema is added rather than by name on
// every validation.
struct Keywords {
  const json* ref = nullptr;
  const json* ref_target = nullptr;  // resolved when added; null: resolved (or reported) when used
  const json* ref_doc = nullptr;
  const json* type = nullptr;
  unsigned type_bits = 0;
  std::string type_expected;  // "string or null"
  const json *enum_values = nullptr, *const_value = nullptr;
  const json *required = nullptr, *dependent_required = nullptr, *min_properties = nullptr, *max_properties = nullptr;
  const json *properties = nullptr, *additional = nullptr, *property_names = nullptr;
  std::vector<std::pair<const std::regex*, const json*>> pattern_properties;
  const json *min_items = nullptr, *max_items = nullptr, *prefix_items = nullptr, *items = nullptr;
  const json *unique_items = nullptr, *contains = nullptr;
  const json *minimum = nullptr, *maximum = nullptr, *exclusive_minimum = nullptr, *exclusive_maximum = nullptr;
  const json* multiple_of = nullptr;
  const json *min_length = nullptr, *max_length = nullptr, *pattern = nullptr, *format = nullptr;
  const std::regex* pattern_re = nullptr;
  const json *all_of = nullptr, *any_of = nullptr, *one_of = nullptr, *not_schema = nullptr;
  const json *if_schema = nullptr, *then_schema = nullptr, *else_schema = nullptr;
};

}  // namespace

struct SchemaRegistry::Impl {
  std::map<std::string, json> schemas;  // by name and by $id
  // Compiled regexes by source; entries never move, so Keywords may point at them.
  mutable std::map<std::string, std::regex> regexes;
  mutable std::mutex regex_mutex;
  // Every schema object of every added schema, by address (std::map nodes never move).
  std::unordered_map<const json*, Keywords> keywords;

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
          if (key.size() >= doc_part.size() &&
              key.compare(key.size() - doc_part.size(), doc_part.size(), doc_part) == 0) {
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

  Keywords compile(const json& schema, const json* doc) const {
    Keywords k;
    auto at = [&](const char* name) -> const json* {
      auto it = schema.find(name);
      return it == schema.end() ? nullptr : &*it;
    };
    if ((k.ref = at("$ref"))) {
      try {
        std::tie(k.ref_target, k.ref_doc) = resolve(k.ref->get<std::string>(), doc);
      } catch (const std::exception&) {
        k.ref_target = k.ref_doc = nullptr;  // a schema added later may define it
      }
    }
    if ((k.type = at("type"))) {
      if (k.type->is_string()) {
        k.type_bits = typeBit(k.type->get<std::string>());
        k.type_expected = k.type->get<std::string>();
      } else {
        for (const auto& t : *k.type) {
          k.type_bits |= typeBit(t.get<std::string>());
          k.type_expected += (k.type_expected.empty() ? "" : " or ") + t.get<std::string>();
        }
      }
    }
    k.enum_values = at("enum");
    k.const_value = at("const");
    k.required = at("required");
    k.dependent_required = at("dependentRequired");
    k.min_properties = at("minProperties");
    k.max_properties = at("maxProperties");
    k.properties = at("properties");
    k.additional = at("additionalProperties");
    k.property_names = at("propertyNames");
    if (const json* pp = at("patternProperties"))
      for (const auto& [pattern, sub] : pp->items()) k.pattern_properties.emplace_back(&regexFor(pattern), &sub);
    k.min_items = at("minItems");
    k.max_items = at("maxItems");
    k.prefix_items = at("prefixItems");
    k.items = at("items");
    k.unique_items = at("uniqueItems");
    k.contains = at("contains");
    k.minimum = at("minimum");
    k.maximum = at("maximum");
    k.exclusive_minimum = at("exclusiveMinimum");
    k.exclusive_maximum = at("exclusiveMaximum");
    k.multiple_of = at("multipleOf");
    k.min_length = at("minLength");
    k.max_length = at("maxLength");
    if ((k.pattern = at("pattern"))) k.pattern_re = &regexFor(k.pattern->get<std::string>());
    k.format = at("format");
    k.all_of = at("allOf");
    k.any_of = at("anyOf");
    k.one_of = at("oneOf");
    k.not_schema = at("not");
    k.if_schema = at("if");
    k.then_schema = at("then");
    k.else_schema = at("else");
    return k;
  }

  // Compiles every schema object of `schema` (a document, or a part of one) into `keywords`.
  void compileAll(const json& schema, const json* doc) {
    if (!schema.is_object()) return;
    keywords[&schema] = compile(schema, doc);
    for (const auto& [key, value] : schema.items()) {
      if (isSchemaMap(key)) {
        for (const auto& [name, sub] : value.items()) compileAll(sub, doc);
      } else if (isSchemaList(key)) {
        for (const auto& sub : value) compileAll(sub, doc);
      } else if (isSubschema(key)) {
        compileAll(value, doc);
      }
    }
  }

  void recompile() {
    keywords.clear();
    for (const auto& [name, doc] : schemas) compileAll(doc, &doc);
  }

  struct Ctx {
    std::vector<ValidationError>* errors;
    std::size_t max_errors;
    bool quote = true;  // Disclosure::kValues
    bool full() const { return errors->size() >= max_errors; }
    std::string got(const json& v) const {
      return quote ? ", got " + v.dump(-1, ' ', false, json::error_handler_t::replace) : "";
    }
  };

  void fail(Ctx& ctx, const Path& path, std::string reason) const {
    if (!ctx.full()) ctx.errors->push_back({path.str(), std::move(reason)});
  }

  bool valid(const json& schema, const json& v, const json* root) const {
    std::vector<ValidationError> errs;
    Ctx c{&errs, 1, false};
    check(schema, v, Path{}, root, c);
    return errs.empty();
  }

  void check(const json& schema, const json& v, const Path& path, const json* root, Ctx& ctx) const {
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) fail(ctx, path, "no value is allowed here");
      return;
    }
    if (auto it = keywords.find(&schema); it != keywords.end()) return check(it->second, v, path, root, ctx);
    check(compile(schema, root), v, path, root, ctx);  // a schema part not seen when added
  }

  void check(const Keywords& k, const json& v, const Path& path, const json* root, Ctx& ctx) const {
    if (k.ref) {
      if (k.ref_target) {
        check(*k.ref_target, v, path, k.ref_doc, ctx);
      } else {
        auto [target, doc] = resolve(k.ref->get<std::string>(), root);
        check(*target, v, path, doc, ctx);
      }
    }
    if (k.type && !matchesTypes(v, k.type_bits)) {
      fail(ctx, path, "expected " + k.type_expected + ", got " + typeName(v));
      return;  // further keyword errors would only repeat this one
    }
    if (k.enum_values) {
      bool found = false;
      for (const auto& e : *k.enum_values) found = found || jsonEqual(e, v);
      if (!found) fail(ctx, path, "must be one of " + k.enum_values->dump() + ctx.got(v));
    }
    if (k.const_value && !jsonEqual(*k.const_value, v)) fail(ctx, path, "must be " + k.const_value->dump());
    if (v.is_object()) checkObject(k, v, path, root, ctx);
    if (v.is_array()) checkArray(k, v, path, root, ctx);
    if (v.is_number()) checkNumber(k, v, path, ctx);
    if (v.is_string()) checkString(k, v, path, ctx);
    checkCombinators(k, v, path, root, ctx);
  }

  void checkObject(const Keywords& k, const json& v, const Path& path, const json* root, Ctx& ctx) const {
    if (k.required) {
      for (const auto& name : *k.required) {
        const auto& n = name.get_ref<const std::string&>();
        if (v.find(n) == v.end()) fail(ctx, path, "missing required field '" + n + "'");
      }
    }
    if (k.dependent_required) {
      for (const auto& [name, deps] : k.dependent_required->items()) {
        if (!v.contains(name)) continue;
        for (const auto& d : deps)
          if (!v.contains(d.get<std::string>()))
            fail(ctx, path, "field '" + d.get<std::string>() + "' is required when '" + name + "' is set");
      }
    }
    if (k.min_properties && v.size() < k.min_properties->get<std::size_t>())
      fail(ctx, path, "must have at least " + k.min_properties->dump() + " fields");
    if (k.max_properties && v.size() > k.max_properties->get<std::size_t>())
      fail(ctx, path, "must have at most " + k.max_properties->dump() + " fields");
    for (auto member = v.begin(); member != v.end(); ++member) {
      const std::string& key = member.key();
      const json& value = member.value();
      const json* declared = nullptr;  // the member's schema in `properties`
      if (k.properties)
        if (auto p = k.properties->find(key); p != k.properties->end()) declared = &*p;
      static const std::string kUndeclared = "*";
      const Path child = path.member(ctx.quote || declared ? key : kUndeclared);
      if (k.property_names && !valid(*k.property_names, key, root))
        fail(ctx, ctx.quote ? child : path,
             ctx.quote ? "field name '" + key + "' is not allowed" : "a field name is not allowed");
      bool matched = false;
      if (declared) {
        matched = true;
        check(*declared, value, child, root, ctx);
      }
      for (const auto& [re, sub] : k.pattern_properties) {
        if (regexFinds(key, *re)) {
          matched = true;
          check(*sub, value, child, root, ctx);
        }
      }
      if (!matched && k.additional) {
        if (k.additional->is_boolean() && !k.additional->get<bool>()) {
          if (ctx.quote)
            fail(ctx, child, "unknown field '" + key + "'");
          else
            fail(ctx, path, "unknown field (not in the schema)");
        } else
          check(*k.additional, value, child, root, ctx);
      }
    }
  }

  void checkArray(const Keywords& k, const json& v, const Path& path, const json* root, Ctx& ctx) const {
    if (k.min_items && v.size() < k.min_items->get<std::size_t>())
      fail(ctx, path, "must have at least " + k.min_items->dump() + " items");
    if (k.max_items && v.size() > k.max_items->get<std::size_t>())
      fail(ctx, path, "must have at most " + k.max_items->dump() + " items");
    std::size_t prefix = 0;
    if (k.prefix_items) {
      prefix = k.prefix_items->size();
      for (std::size_t i = 0; i < prefix && i < v.size(); ++i)
        check((*k.prefix_items)[i], v[i], path.item(i), root, ctx);
    }
    if (k.items) {
      for (std::size_t i = prefix; i < v.size(); ++i) {
        if (k.items->is_boolean() && !k.items->get<bool>())
          fail(ctx, path.item(i), "no more items are allowed");
        else
          check(*k.items, v[i], path.item(i), root, ctx);
      }
    }
    if (k.unique_items && k.unique_items->get<bool>()) {
      for (std::size_t i = 0; i < v.size(); ++i)
        for (std::size_t j = i + 1; j < v.size(); ++j)
          if (jsonEqual(v[i], v[j])) {
            fail(ctx, path, "items " + std::to_string(i) + " and " + std::to_string(j) + " are duplicates");
            return;
          }
    }
    if (k.contains) {
      bool any = false;
      for (const auto& item : v) any = any || valid(*k.contains, item, root);
      if (!any) fail(ctx, path, "must contain at least one matching item");
    }
  }

  void checkNumber(const Keywords& k, const json& v, const Path& path, Ctx& ctx) const {
    const double d = v.get<double>();
    if (k.minimum && d < k.minimum->get<double>()) fail(ctx, path, "must be >= " + k.minimum->dump() + ctx.got(v));
    if (k.maximum && d > k.maximum->get<double>()) fail(ctx, path, "must be <= " + k.maximum->dump() + ctx.got(v));
    if (k.exclusive_minimum && d <= k.exclusive_minimum->get<double>())
      fail(ctx, path, "must be > " + k.exclusive_minimum->dump() + ctx.got(v));
    if (k.exclusive_maximum && d >= k.exclusive_maximum->get<double>())
      fail(ctx, path, "must be < " + k.exclusive_maximum->dump() + ctx.got(v));
    if (k.multiple_of) {
      const double q = d / k.multiple_of->get<double>();
      if (std::fabs(q - std::round(q)) > 1e-9) fail(ctx, path, "must be a multiple of " + k.multiple_of->dump());
    }
  }

  void checkString(const Keywords& k, const json& v, const Path& path, Ctx& ctx) const {
    const auto& s = v.get_ref<const std::string&>();
    // Code points are at most bytes: the count is needed only near the bounds.
    if (k.min_length && utf8CodePointCount(s) < k.min_length->get<std::size_t>())
      fail(ctx, path, "must be at least " + k.min_length->dump() + " characters long");
    if (k.max_length && s.size() > k.max_length->get<std::size_t>() &&
        utf8CodePointCount(s) > k.max_length->get<std::size_t>()) {
      fail(ctx, path, "must be at most " + k.max_length->dump() + " characters long");
      return;  // a pattern or format error would only repeat it, at the cost of a regex over it
    }
    if (k.pattern_re && !regexFinds(s, *k.pattern_re))
      fail(ctx, path, "does not match pattern " + k.pattern->get<std::string>());
    if (k.format && !validFormat(k.format->get_ref<const std::string&>(), s))
      fail(ctx, path, "is not a valid " + k.format->get<std::string>());
  }

  void checkCombinators(const Keywords& k, const json& v, const Path& path, const json* root, Ctx& ctx) const {
    if (k.all_of) {
      for (const auto& sub : *k.all_of) check(sub, v, path, root, ctx);
    }
    if (k.any_of) {
      bool any = false;
      for (const auto& sub : *k.any_of) any = any || valid(sub, v, root);
      if (!any) {
        std::string detail;
        if (!k.any_of->empty()) {
          std::vector<ValidationError> first;
          Ctx c{&first, 1, ctx.quote};
          check((*k.any_of)[0], v, path, root, c);
          if (!first.empty()) detail = " (first form: " + first[0].describe() + ")";
        }
        fail(ctx, path, "matches none of the allowed forms" + detail);
      }
    }
    if (k.one_of) {
      int count = 0;
      for (const auto& sub : *k.one_of) count += valid(sub, v, root) ? 1 : 0;
      if (count != 1)
        fail(ctx, path, count == 0 ? "matches none of the allowed forms" : "matches more than one allowed form");
    }
    if (k.not_schema && valid(*k.not_schema, v, root)) fail(ctx, path, "matches a form that is not allowed");
    if (k.if_schema) {
      if (valid(*k.if_schema, v, root)) {
        if (k.then_schema) check(*k.then_schema, v, path, root, ctx);
      } else if (k.else_schema) {
        check(*k.else_schema, v, path, root, ctx);
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
  impl_->recompile();  // refs into this schema from earlier ones resolve now
}

bool SchemaRegistry::has(const std::string& name) const {
  return impl_->schemas.count(name) > 0;
}

std::vector<ValidationError> SchemaRegistry::validate(const std::string& name, const nlohmann::json& doc,
                                                      std::size_t max_errors, Disclosure disclosure) const {
  std::vector<ValidationError> errors;
  Impl::Ctx ctx{&errors, max_errors, disclosure == Disclosure::kValues};
  if (name.find('#') != std::string::npos) {  // a part of a schema, e.g. "common.schema.json#/$defs/answer"
    auto [target, root] = impl_->resolve(name, nullptr);
    impl_->check(*target, doc, Path{}, root, ctx);
    return errors;
  }
  auto it = impl_->schemas.find(name);
  if (it == impl_->schemas.end()) throw std::invalid_argument("no schema named " + name);
  impl_->check(it->second, doc, Path{}, &it->second, ctx);
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
