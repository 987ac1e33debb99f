#include "ticketflow/domain/messages.hpp"

#include <gtest/gtest.h>

#include "ticketflow/core/base64.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace {

Ticket sampleTicket() {
  Ticket t;
  t.id = "INC-1001";
  t.tenant = "acme";
  t.revision = 2;
  t.source = TicketSource{"jira", "HELP-42"};
  t.subject = "VPN drops every hour";
  t.body = "GlobalProtect disconnects every 60 minutes.";
  t.requester = Requester{"u1", "Ana", "ana@acme.example", "Finance", true};
  t.created_at = "2026-11-20T09:00:00Z";
  t.priority = "high";
  t.metadata = {{"channel", "email"}};
  return t;
}

nlohmann::json document(const std::string& text) {
  return nlohmann::json::parse(text);
}

TicketResult sampleResult() {
  TicketResult r;
  r.ticket_id = "INC-1001";
  r.tenant = "acme";
  r.revision = 2;
  r.trace_id = "0123456789abcdef0123456789abcdef";
  r.classification = {"Access", 0.91, Difficulty::kEasy, 0.2, {{"Access", 0.91}, {"Hardware", 0.09}}};
  r.tier = "fast";
  r.model = "gemini-2.5-flash-lite";
  r.provider = "google";
  r.answer = {"VPN timeouts", "agrees", "Please update the client.", {"Update client", "Reboot"}, false, "", 0.8};
  r.cost_micro_usd = 123;
  r.usage = {900, 250};
  r.latency_ms = 850;
  r.attempts = 1;
  r.simulated = true;
  r.completed_at = "2026-11-20T09:00:01.000Z";
  return r;
}

TEST(Messages, TicketRoundTrips) {
  const Ticket t = sampleTicket();
  auto parsed = parseTicket(toJson(t));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(toJson(*parsed), toJson(t));
  EXPECT_EQ(parsed->text(), "VPN drops every hour\nGlobalProtect disconnects every 60 minutes.");
}

TEST(Messages, EveryTypeSerialisesToItsSchema) {
  const auto& schemas = schema::SchemaRegistry::builtin();
  RoutedTicket routed{sampleTicket(),
                      "0123456789abcdef0123456789abcdef",
                      "2026-11-20T09:00:00.100Z",
                      sampleResult().classification,
                      "fast",
                      "difficulty easy -> fast",
                      0,
                      BudgetState::kOk};
  EXPECT_TRUE(schemas.validate("routed_ticket.schema.json", document(toJson(routed))).empty());
  EXPECT_TRUE(schemas.validate("result.schema.json", document(toJson(sampleResult()))).empty());
  const auto update = TicketUpdate::fromResult(sampleResult(), "2026-11-20T09:00:02.000Z");
  EXPECT_TRUE(schemas.validate("ticket_update.schema.json", document(toJson(update))).empty());

  auto routed_back = parseRoutedTicket(toJson(routed));
  ASSERT_TRUE(routed_back.ok()) << routed_back.error().message;
  EXPECT_EQ(toJson(*routed_back), toJson(routed));
  auto result_back = parseTicketResult(toJson(sampleResult()));
  ASSERT_TRUE(result_back.ok()) << result_back.error().message;
  EXPECT_EQ(toJson(*result_back), toJson(sampleResult()));
  auto update_back = parseTicketUpdate(toJson(update));
  ASSERT_TRUE(update_back.ok()) << update_back.error().message;
  EXPECT_EQ(toJson(*update_back), toJson(update));
}

// The writer prints keys sorted and numbers as nlohmann does: the bytes are what nlohmann's own
// dump() of the parsed message gives, so either side of a hop may use either.
TEST(Messages, SerialisedBytesAreNlohmannsPrintingOfTheSameDocument) {
  RoutedTicket routed{sampleTicket(),
                      "0123456789abcdef0123456789abcdef",
                      "2026-11-20T09:00:00.100Z",
                      sampleResult().classification,
                      "balanced",
                      "escalated",
                      1,
                      BudgetState::kDowngraded,
                      250,
                      2};
  routed.route.routed_tier = "fast";
  routed.route.move("fast", "frontier", "low_confidence");
  routed.route.move("frontier", "balanced", "budget_downgrade");
  TicketResult cached = sampleResult();
  cached.route = routed.route;
  cached.cache = {CacheStatus::kSemantic, 0.9712, "INC-0999", 480};
  cached.source.reset();
  cached.degraded = true;
  cached.degraded_reason = "answered by fallback";
  cached.ticket_chars_cut = 987654;
  TicketUpdate update = TicketUpdate::fromResult(cached, "2026-11-20T09:00:02.000Z");
  DeadLetter letter;
  letter.stage = "intake";
  letter.error = "field 'body': must be at most 1048576 characters long";
  letter.topic = "tickets.inbound";
  letter.key = "BIG-1";
  letter.payload = std::string(100'000, 'a');
  letter.failed_at = "2026-11-20T09:00:02.000Z";
  truncatePayload(letter, 1024);
  EXPECT_EQ(letter.payload.size(), 1024u);
  EXPECT_EQ(letter.payload_bytes, 100'000);
  for (const std::string& text : {toJson(sampleTicket()), toJson(routed), toJson(sampleResult()), toJson(cached),
                                  toJson(update), toJson(cached.answer), toJson(letter)})
    EXPECT_EQ(text, document(text).dump());
  EXPECT_TRUE(
      schema::SchemaRegistry::builtin().validate("ticket_update.schema.json", document(toJson(update))).empty());
  EXPECT_TRUE(schema::SchemaRegistry::builtin().validate("result.schema.json", document(toJson(cached))).empty());
  EXPECT_TRUE(schema::SchemaRegistry::builtin().validate("dead_letter.schema.json", document(toJson(letter))).empty());
  EXPECT_EQ(parseTicketUpdate(toJson(update))->ticket_chars_cut, 987654);
  EXPECT_TRUE(
      schema::SchemaRegistry::builtin().validate("routed_ticket.schema.json", document(toJson(routed))).empty());
  auto routed_back = parseRoutedTicket(toJson(routed));
  ASSERT_TRUE(routed_back.ok()) << routed_back.error().message;
  EXPECT_EQ(toJson(*routed_back), toJson(routed));
  ASSERT_EQ(parseTicketUpdate(toJson(update))->route.moves.size(), 2u);
  EXPECT_EQ(parseTicketUpdate(toJson(update))->route.moves[1].reason, "budget_downgrade");
  auto letter_back = parseDeadLetter(toJson(letter));
  ASSERT_TRUE(letter_back.ok()) << letter_back.error().message;
  EXPECT_TRUE(letter_back->payload_truncated);
  EXPECT_EQ(toJson(*letter_back), toJson(letter));
}

TEST(Messages, DeadLetterKeepsBinaryPayloadAsBase64) {
  DeadLetter d;
  d.stage = "intake";
  d.error_class = ErrorCode::kMalformed;
  d.error = "not valid JSON";
  d.attempts = 1;
  d.topic = "tickets.inbound";
  d.partition = 3;
  d.offset = 42;
  d.payload = std::string("\xff\xfe\x00garbage", 10);
  d.failed_at = "2026-11-20T09:00:00.000Z";
  const auto j = document(toJson(d));
  EXPECT_EQ(j["payload_encoding"], "base64");
  auto back = parseDeadLetter(j.dump());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->payload, d.payload);
  EXPECT_EQ(back->error_class, ErrorCode::kMalformed);
}

TEST(Messages, ParseErrorsNameTheField) {
  auto bad_json = parseTicket("{not json");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_EQ(bad_json.error().code, ErrorCode::kMalformed);

  auto j = document(toJson(sampleTicket()));
  j["priority"] = "whenever";
  auto bad_priority = parseTicket(j.dump());
  ASSERT_FALSE(bad_priority.ok());
  EXPECT_EQ(bad_priority.error().code, ErrorCode::kSchemaViolation);
  EXPECT_NE(bad_priority.error().message.find("field 'priority'"), std::string::npos) << bad_priority.error().message;

  j = document(toJson(sampleTicket()));
  j.erase("body");
  auto no_body = parseTicket(j.dump());
  ASSERT_FALSE(no_body.ok());
  EXPECT_NE(no_body.error().message.find("'body'"), std::string::npos);
}

TEST(Messages, Utf8Validation) {
  EXPECT_TRUE(isValidUtf8("plain ascii"));
  EXPECT_TRUE(isValidUtf8("Grüße, 日本語, 🖨️"));
  EXPECT_FALSE(isValidUtf8("\xc3\x28"));
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_EQ(base64Decode(base64Encode(std::string("\x00\x01\x02", 3))), std::string("\x00\x01\x02", 3));
}

}  // namespace
}  // namespace ticketflow
