// Code and schema agree both ways, checked by an independent validator: for every document in
// tests/data/schemas/<schema>/{valid,invalid}, our validator and ajv (draft 2020-12, with
// ajv-formats) give the same verdict as the folder it sits in; and documents our C++ types
// serialise are valid for ajv too.
#include <filesystem>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "fixtures/ajv.hpp"
#include "fixtures/environment.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace {

namespace fs = std::filesystem;
using testing::runCommand;
using testing::sourceDir;

using testing::ajvPath;
using testing::ajvVerdicts;

class SchemaAgreement : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ajvPath())) FAIL() << "ajv is not installed: run scripts/bootstrap --test-tools (make test does)";
  }
};

TEST_F(SchemaAgreement, OurValidatorAndAjvAgreeOnTheCorpus) {
  const auto& registry = schema::SchemaRegistry::builtin();
  int documents = 0;
  for (const auto& dir : fs::directory_iterator(sourceDir() + "/tests/data/schemas")) {
    const std::string schema = dir.path().filename().string() + ".schema.json";
    ASSERT_TRUE(registry.has(schema)) << schema;
    for (const char* kind : {"valid", "invalid"}) {
      const fs::path folder = dir.path() / kind;
      if (!fs::exists(folder)) continue;
      const auto ajv = ajvVerdicts(schema, folder.string() + "/*.json");
      for (const auto& doc : fs::directory_iterator(folder)) {
        const bool expected = std::string(kind) == "valid";
        const auto errors = registry.validate(schema, nlohmann::json::parse(testing::readFile(doc.path())));
        EXPECT_EQ(errors.empty(), expected) << doc.path() << (errors.empty() ? "" : ": " + errors[0].describe());
        auto it = ajv.find(doc.path().string());
        ASSERT_NE(it, ajv.end()) << "ajv gave no verdict for " << doc.path();
        EXPECT_EQ(it->second, expected) << "ajv disagrees on " << doc.path();
        ++documents;
      }
    }
  }
  EXPECT_GE(documents, 30);
}

TEST_F(SchemaAgreement, WhatOurTypesSerialiseIsValidForAjv) {
  const std::string dir = testing::makeTempDir("serialised");
  Ticket t;
  t.id = "INC-7";
  t.tenant = "globex";
  t.body = "Laptop will not boot after the BIOS update; shows error 0xc000000e.";
  t.subject = "Laptop boot failure";
  t.created_at = formatRfc3339(std::chrono::system_clock::now());
  t.priority = "high";
  t.requester = Requester{"", "Bo", "bo@globex.example", "", false};
  testing::writeFile(dir + "/ticket.json", toJson(t));
  TicketResult r;
  r.ticket_id = t.id;
  r.tenant = t.tenant;
  r.trace_id = "00112233445566778899aabbccddeeff";
  r.classification.category = "Hardware";
  r.classification.confidence = 0.7;
  r.classification.difficulty_score = 0.5;
  r.tier = "balanced";
  r.answer.summary = "Boot failure after BIOS update";
  r.answer.reply = "We will look at it.";
  r.answer.needs_human = true;
  r.answer.needs_human_reason = "hardware diagnosis on site";
  r.completed_at = formatRfc3339(std::chrono::system_clock::now());
  testing::writeFile(dir + "/result.json", toJson(r));
  testing::writeFile(dir + "/update.json", toJson(TicketUpdate::fromResult(r, r.completed_at)));
  DeadLetter d;
  d.stage = "tier:fast";
  d.error = "provider chain exhausted";
  d.topic = "tickets.tier.fast";
  d.payload = std::string("\x01\x02\xff", 3);
  d.failed_at = r.completed_at;
  testing::writeFile(dir + "/dead_letter.json", toJson(d));

  ShadowRequest shadow;
  shadow.routed.ticket = t;
  shadow.routed.trace_id = r.trace_id;
  shadow.routed.received_at = r.completed_at;
  shadow.routed.classification = r.classification;
  shadow.routed.tier = "fast";
  shadow.routed.rule = "difficulty easy";
  shadow.tier = "fast";
  shadow.model = "gpt-5-mini";
  shadow.answer_category = "Hardware";
  shadow.confidence = 0.8;
  shadow.agreement = 0.91;
  shadow.features.classifier_confidence = 0.7;
  testing::writeFile(dir + "/shadow.json", toJson(shadow));
  auto shadow_back = parseShadowRequest(toJson(shadow));
  ASSERT_TRUE(shadow_back.ok()) << shadow_back.error().message;
  EXPECT_EQ(toJson(*shadow_back), toJson(shadow));

  Feedback feedback;
  feedback.tenant = "acme";
  feedback.ticket_id = "INC-1042";
  feedback.revision = 2;
  feedback.corrected_category = "Hardware";
  feedback.reopened = false;
  feedback.submitted_at = "2026-12-06T10:00:00Z";
  testing::writeFile(dir + "/feedback.json", toJson(feedback));
  auto feedback_back = parseFeedback(toJson(feedback));
  ASSERT_TRUE(feedback_back.ok()) << feedback_back.error().message;
  EXPECT_EQ(toJson(*feedback_back), toJson(feedback));

  const std::map<std::string, std::string> files = {
      {"ticket.json", "ticket.schema.json"},        {"shadow.json", "shadow_request.schema.json"},
      {"feedback.json", "feedback.schema.json"},    {"result.json", "result.schema.json"},
      {"update.json", "ticket_update.schema.json"}, {"dead_letter.json", "dead_letter.schema.json"}};
  for (const auto& [file, schema] : files) {
    const auto verdicts = ajvVerdicts(schema, dir + "/" + file);
    ASSERT_EQ(verdicts.size(), 1u) << file;
    EXPECT_TRUE(verdicts.begin()->second) << file << " is invalid for ajv";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ticketflow
