// Hostile bytes at the parsers: each case here was accepted, crashed or leaked before issue 18.
#include <string>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/domain/ticket_file.hpp"

namespace ticketflow {
namespace {

const std::string kValidTicket =
    R"({"schema_version":1,"id":"T-1","tenant":"acme","body":"VPN drops","created_at":"2026-11-22T10:00:00Z"})";

const TicketDefaults kDefaults{"acme", "2026-11-22T10:00:00Z", "other"};

std::string withField(const std::string& field_json) {
  return kValidTicket.substr(0, kValidTicket.size() - 1) + "," + field_json + "}";
}

TEST(HostileInput, BytesAfterANulAreNotSmuggledPastTheParser) {
  ASSERT_TRUE(parseTicket(kValidTicket).ok());
  const std::string smuggled = kValidTicket + std::string(1, '\0') + R"({"smuggled":true})";
  auto parsed = parseTicket(smuggled);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::kMalformed);
  // A NUL anywhere outside a string escape is not JSON either.
  EXPECT_FALSE(parseTicket(std::string(1, '\0') + kValidTicket).ok());
}

TEST(HostileInput, RevisionIsBoundedAndNeverWrapsNegative) {
  EXPECT_TRUE(parseTicket(withField(R"("revision":9007199254740991)")).ok());
  for (const char* revision : {"9223372036854775808", "18446744073709551615", "1e300", "9007199254740992"}) {
    auto parsed = parseTicket(withField(std::string(R"("revision":)") + revision));
    ASSERT_FALSE(parsed.ok()) << revision;
    EXPECT_EQ(parsed.error().code, ErrorCode::kSchemaViolation);
    EXPECT_NE(parsed.error().message.find("field 'revision'"), std::string::npos) << parsed.error().message;
  }
}

TEST(HostileInput, RejectionsNameTheFieldAndRuleNeverTheContent) {
  const std::string secret = "hunter2-SECRET";
  const std::vector<std::string> hostile = {
      withField(R"("priority":")" + secret + R"(")"),                   // enum
      withField(R"(")" + secret + R"(":1)"),                            // unknown field
      withField(R"("metadata":{")" + secret + R"(":{"deep":[1,2]}})"),  // metadata key
      withField(R"("source":{"system":"jira","ref":"x",")" + secret + R"(":1})"),
      withField(R"("revision":-1)"),  // minimum
  };
  for (const auto& bytes : hostile) {
    auto parsed = parseTicket(bytes);
    ASSERT_FALSE(parsed.ok()) << bytes;
    EXPECT_EQ(parsed.error().message.find(secret), std::string::npos) << parsed.error().message;
  }
  EXPECT_EQ(parseTicket(withField(R"("revision":-1)")).error().message, "field 'revision': must be >= 0");
  auto metadata = parseTicket(withField(R"("metadata":{")" + secret + R"(":{"deep":[1,2]}})"));
  EXPECT_EQ(metadata.error().message.find("field 'metadata.*'"), 0u) << metadata.error().message;
  auto unknown = parseTicket(withField(R"(")" + secret + R"(":1)"));
  EXPECT_EQ(unknown.error().message, "unknown field (not in the schema)");
  auto nested = parseTicket(withField(R"("source":{"system":"jira",")" + secret + R"(":1})"));
  EXPECT_EQ(nested.error().message, "field 'source': unknown field (not in the schema)");
  auto priority = parseTicket(withField(R"("priority":")" + secret + R"(")"));
  EXPECT_NE(priority.error().message.find("field 'priority': must be one of"), std::string::npos)
      << priority.error().message;
}

// GCC 12's std::regex recurses per character: a megabyte id or language tag reaching a pattern
// check would overflow the stack, crash intake, and crash it again on every redelivery.
TEST(HostileInput, AMegabyteStringNeverReachesARegex) {
  const std::string mega(1'000'000, 'a');
  for (const std::string& field : {R"("language":")" + mega + R"(")", R"("requester":{"email":"a@)" + mega + R"("})"}) {
    auto parsed = parseTicket(withField(field));
    ASSERT_FALSE(parsed.ok());
    EXPECT_NE(parsed.error().message.find("must be at most"), std::string::npos)
        << parsed.error().message.substr(0, 200);
  }
  auto id = parseTicket(R"({"schema_version":1,"id":"A)" + mega +
                        R"(","tenant":"acme","body":"x","created_at":"2026-11-22T10:00:00Z"})");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message, "field 'id': must be at most 128 characters long");
}

TEST(HostileInput, CsvWithInvalidUtf8NamesTheLineAndColumn) {
  const std::string path = ::testing::TempDir() + "/bad_utf8.csv";
  testing::writeFile(path, "text,category\n\"two\nlines\",a\nbad \xff byte,b\n");
  auto records = readTicketRecords(path);
  ASSERT_TRUE(records.ok()) << records.error().message;
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].line, 2u);
  EXPECT_EQ((*records)[1].line, 4u);  // the quoted field spans lines 2 and 3
  EXPECT_TRUE(ticketFromRecord((*records)[0], {}, kDefaults).ok());
  auto bad = ticketFromRecord((*records)[1], {}, kDefaults);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "line 4: column 'text' is not valid UTF-8 (the file must be UTF-8)");

  auto unterminated = parseCsv("a,b\n1,\"open\n2,3\n");
  ASSERT_FALSE(unterminated.ok());
  EXPECT_EQ(unterminated.error().message, "line 2: the file ends inside a quoted field");
}

TEST(HostileInput, JsonLinesWithANulOrInvalidUtf8AreRejectedWithTheirLine) {
  const std::string path = ::testing::TempDir() + "/hostile.jsonl";
  testing::writeFile(path, kValidTicket + "\n" + kValidTicket + std::string(1, '\0') + "{}\n" + "\xff\xfe\n");
  auto records = readTicketRecords(path);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 3u);
  EXPECT_TRUE(ticketFromRecord((*records)[0], {}, kDefaults).ok());
  auto smuggled = ticketFromRecord((*records)[1], {}, kDefaults);
  ASSERT_FALSE(smuggled.ok());
  EXPECT_EQ(smuggled.error().message, "line 2: not a JSON object");
  auto binary = ticketFromRecord((*records)[2], {}, kDefaults);
  ASSERT_FALSE(binary.ok());
  EXPECT_EQ(binary.error().message, "line 3: not valid UTF-8");
}

}  // namespace
}  // namespace ticketflow
