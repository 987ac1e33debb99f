#include <gtest/gtest.h>

#include "ticketflow/schema/validator.hpp"

namespace ticketflow::schema {
namespace {

using nlohmann::json;

class SchemaValidator : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.add(
        "defs.json",
        json::parse(R"({"$id": "https://x/defs.json", "$defs": {"id": {"type": "string", "pattern": "^[a-z]+$"}}})"));
    registry_.add("doc.json", json::parse(R"({
      "$id": "https://x/doc.json",
      "type": "object", "additionalProperties": false, "required": ["id", "n"],
      "properties": {
        "id": {"$ref": "defs.json#/$defs/id"},
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "ratio": {"type": "number", "exclusiveMaximum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "uniqueItems": true, "maxItems": 3},
        "when": {"type": "string", "format": "date-time"},
        "kind": {"enum": ["a", "b"]},
        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "one": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 5}]},
        "map": {"type": "object", "propertyNames": {"pattern": "^x"}, "additionalProperties": {"type": "boolean"}}
      }})"));
  }
  std::string firstError(const std::string& doc) {
    auto errors = registry_.validate("doc.json", json::parse(doc));
    return errors.empty() ? "" : errors.front().describe();
  }
  SchemaRegistry registry_;
};

TEST_F(SchemaValidator, AcceptsAValidDocument) {
  EXPECT_EQ(
      firstError(
          R"({"id": "abc", "n": 3, "ratio": 0.5, "tags": ["a", "b"], "when": "2026-11-22T10:00:00Z", "kind": "a", "either": 4, "one": 2, "map": {"x1": true}})"),
      "");
}

TEST_F(SchemaValidator, NamesTheFieldAndReason) {
  EXPECT_EQ(firstError(R"({"id": "abc", "n": 3, "extra": 1})"), "/extra: unknown field 'extra'");
  EXPECT_EQ(firstError(R"({"id": "abc"})"), "missing required field 'n'");
  EXPECT_EQ(firstError(R"({"id": "abc", "n": "3"})"), "/n: expected integer, got string");
  EXPECT_EQ(firstError(R"({"id": "abc", "n": 11})"), "/n: must be <= 10, got 11");
  EXPECT_EQ(firstError(R"({"id": "ABC", "n": 1})"), "/id: does not match pattern ^[a-z]+$");
  EXPECT_EQ(firstError(R"({"id": "a", "n": 1, "tags": ["abcd"]})"), "/tags/0: must be at most 3 characters long");
}

TEST_F(SchemaValidator, ChecksEachKeyword) {
  EXPECT_NE(firstError(R"({"id": "a", "n": 1.5})"), "");
  EXPECT_EQ(firstError(R"({"id": "a", "n": 2.0})"), "");  // 2.0 is an integer in JSON Schema
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "ratio": 1})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "tags": ["a", "a"]})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "tags": ["a", "b", "c", "d"]})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "when": "2026-02-30T10:00:00Z"})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "when": "2026-11-22 10:00"})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "kind": "c"})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "either": true})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "one": 6})"), "");  // matches both branches
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "map": {"y": true}})"), "");
  EXPECT_NE(firstError(R"({"id": "a", "n": 1, "map": {"x": 1}})"), "");
}

TEST_F(SchemaValidator, CountsCharactersNotBytes) {
  EXPECT_EQ(firstError(R"({"id": "a", "n": 1, "tags": ["ééé"]})"), "");
}

TEST(SchemaRegistryTest, RejectsUnsupportedKeywords) {
  SchemaRegistry r;
  EXPECT_THROW(r.add("x.json", json::parse(R"({"type": "object", "unevaluatedProperties": false})")),
               std::invalid_argument);
}

TEST(SchemaRegistryTest, BuiltinHasEverySchema) {
  const auto& r = SchemaRegistry::builtin();
  for (const char* name : {"config.schema.json", "ticket.schema.json", "routed_ticket.schema.json",
                           "result.schema.json", "ticket_update.schema.json", "dead_letter.schema.json",
                           "common.schema.json", "shadow_request.schema.json", "feedback.schema.json"})
    EXPECT_TRUE(r.has(name)) << name;
}

TEST(FieldPath, ConvertsPointers) {
  EXPECT_EQ(pointerToFieldPath("/kafka/topics/inbound"), "kafka.topics.inbound");
  EXPECT_EQ(pointerToFieldPath("/tiers/0/models/1"), "tiers[0].models[1]");
  EXPECT_EQ(pointerToFieldPath(""), "");
  EXPECT_EQ(pointerToFieldPath("/a~1b"), "a/b");
}

}  // namespace
}  // namespace ticketflow::schema
