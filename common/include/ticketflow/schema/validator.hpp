#pragma once
// A JSON Schema (draft 2020-12) validator for the keywords our schemas use. The schemas in
// schemas/ are the contract with other teams; this validator and an independent one (ajv) must
// give the same verdicts, which tests/integration/schema_agreement_test.cpp checks.
//
// Supported: type, enum, const, properties, patternProperties, additionalProperties, required,
// propertyNames, minProperties, maxProperties, dependentRequired, items, prefixItems, minItems,
// maxItems, uniqueItems, contains, minimum, maximum, exclusiveMinimum, exclusiveMaximum,
// multipleOf, minLength, maxLength, pattern, format (date-time, date, email, uri, uuid),
// allOf, anyOf, oneOf, not, if/then/else, $ref (local and across registered schemas), $defs.
// A schema using any other keyword is rejected when it is added, never silently ignored.
// Thread-safe for concurrent validate() calls once all schemas are added.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ticketflow::schema {

struct ValidationError {
  std::string path;    // JSON pointer of the offending value, "" for the root
  std::string reason;  // e.g. "unknown field 'inbund'", "expected integer, got string"
  // "path: reason", or "reason" at the root.
  std::string describe() const;
};

// What an error's reason and path may show. Untrusted documents (tickets and everything built from
// them) get kSchemaOnly: a reason names the field and the rule, never a value, and a member name
// the schema does not declare (an unknown field, a metadata key) appears in the path as "*".
enum class Disclosure { kValues, kSchemaOnly };

class SchemaRegistry {
 public:
  SchemaRegistry();
  ~SchemaRegistry();
  SchemaRegistry(const SchemaRegistry&) = delete;
  SchemaRegistry& operator=(const SchemaRegistry&) = delete;

  // Adds a schema under its "$id" (and under `name`, e.g. "ticket.schema.json"). Throws
  // std::invalid_argument naming the keyword if the schema uses something unsupported.
  void add(const std::string& name, nlohmann::json schema);

  // Validates `doc` against the schema registered as `name` (or a part of one:
  // "common.schema.json#/$defs/answer"); returns the errors found
  // (empty when valid). Collects at most `max_errors`.
  std::vector<ValidationError> validate(const std::string& name, const nlohmann::json& doc, std::size_t max_errors = 8,
                                        Disclosure disclosure = Disclosure::kValues) const;
  // JSON text is parsed first (a std::string would otherwise become a string document).
  std::vector<ValidationError> validate(const std::string& name, std::string_view json_text,
                                        std::size_t max_errors = 8) const = delete;

  bool has(const std::string& name) const;

  // The registry of every schema shipped in schemas/ (embedded in the binary).
  static const SchemaRegistry& builtin();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Converts a JSON pointer ("/kafka/topics/0/name") into the dotted field path our config
// messages use ("kafka.topics[0].name").
std::string pointerToFieldPath(const std::string& pointer);
// One JSON pointer token: "~" as "~0", "/" as "~1".
std::string escapePointerToken(const std::string& token);

}  // namespace ticketflow::schema
