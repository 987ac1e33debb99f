// Hostile messages on a running pipeline (issue 18): each is dead-lettered with a reason that
// names the place, never the content; valid tickets around them are answered once; nothing loops.
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "local_stack/local_stack.hpp"
#include "pipeline/pipeline.hpp"
#include "results/sinks.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

std::string ticketJson(const std::string& id, const std::string& extra_fields, const std::string& body = "VPN drops") {
  return R"({"schema_version":1,"id":")" + id + R"(","tenant":"acme","body":")" + body +
         R"(","created_at":"2026-11-22T10:00:00Z")" + extra_fields + "}";
}

TEST(HostileInput, EachIsDeadLetteredWithItsReasonAndValidTicketsAreAnsweredOnce) {
  Config config = testing::testConfig();
  // Small enough that a dead letter must be cut, large enough for a ticket at the schema's limit.
  config.kafka.max_message_bytes = 2 << 20;
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, testing::optionsFor(pipeline::allRoles(config), &log));
  run.start();

  const std::string secret = "hunter2-SECRET";
  const std::string max_body(1'048'576, 'a');  // exactly the schema's maxLength
  std::vector<testing::Record> records = {
      {"SMUGGLE-1", ticketJson("SMUGGLE-1", "") + std::string(1, '\0') + R"({"smuggled":true})"},
      {"REV-1", ticketJson("REV-1", R"(,"revision":9223372036854775808)")},
      {"REV-2", ticketJson("REV-2", R"(,"revision":1e300)")},
      {"LEAK-1", ticketJson("LEAK-1", R"(,"priority":")" + secret + R"(")")},
      {"LEAK-2", ticketJson("LEAK-2", R"(,"metadata":{")" + secret + R"(":{"x":1}})")},
      {"BIG-1", ticketJson("BIG-1", "", max_body + "a")},  // one character over the schema
      {"HUGE-1", std::string(2'500'000, '{')},             // over kafka.max_message_bytes
      {"MAX-1", ticketJson("MAX-1", "", max_body)},        // at the limit: answered
  };
  for (int i = 0; i < 10; ++i)
    records.push_back({"OK-" + std::to_string(i), ticketJson("OK-" + std::to_string(i), "")});
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound, records);

  testing::TopicReader updates(config.kafka.bootstrap_servers, config.kafka.topics.updates, config.kafka.partitions);
  const auto answered = testing::readUntilEveryKey(updates, 11, 120s);
  EXPECT_EQ(answered.size(), 11u);
  for (const auto& [key, n] : answered) {
    EXPECT_EQ(n, 1) << key;
    EXPECT_TRUE(key == "MAX-1" || key.rfind("OK-", 0) == 0) << key << " should not have been answered";
  }
  for (const auto& m : updates.messages()) {
    auto u = parseTicketUpdate(m.value);
    ASSERT_TRUE(u.ok()) << u.error().message;
    if (u->ticket_id == "MAX-1") {
      EXPECT_GT(u->ticket_chars_cut, 1'000'000) << "the model saw a bounded part of the ticket";
      EXPECT_LT(u->cost_micro_usd, 100'000) << "a huge ticket costs cents, not dollars";
      EXPECT_NE(
          results::updateNote(*u).find(std::to_string(u->ticket_chars_cut) + " characters in between were left out"),
          std::string::npos)
          << "the comment on the agent's ticket says so too";
    }
  }

  testing::TopicReader dlq(config.kafka.bootstrap_servers, config.kafka.topics.dlq, config.kafka.partitions);
  const auto dead_keys = testing::readUntilEveryKey(dlq, 7, 60s);
  std::map<std::string, DeadLetter> dead;
  for (const auto& m : dlq.messages()) {
    auto d = parseDeadLetter(m.value);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(dead.count(d->key), 0u) << d->key << " dead-lettered twice";
    EXPECT_EQ(d->error.find(secret), std::string::npos) << d->error;
    EXPECT_LE(m.value.size(), static_cast<std::size_t>(config.kafka.max_message_bytes));
    dead[d->key] = *d;
  }
  ASSERT_EQ(dead.size(), 7u);
  EXPECT_EQ(dead["SMUGGLE-1"].error_class, ErrorCode::kMalformed);
  EXPECT_EQ(dead["REV-1"].error, "field 'revision': must be <= 9007199254740991");
  EXPECT_EQ(dead["REV-2"].error, "field 'revision': must be <= 9007199254740991");
  EXPECT_EQ(dead["LEAK-1"].error.rfind("field 'priority': must be one of", 0), 0u) << dead["LEAK-1"].error;
  EXPECT_EQ(dead["LEAK-2"].error.rfind("field 'metadata.*'", 0), 0u) << dead["LEAK-2"].error;
  EXPECT_EQ(dead["BIG-1"].error, "field 'body': must be at most 1048576 characters long");
  EXPECT_FALSE(dead["BIG-1"].payload_truncated) << "a letter that fits keeps the whole payload";
  EXPECT_TRUE(dead["HUGE-1"].payload_truncated);
  EXPECT_EQ(dead["HUGE-1"].payload_bytes, 2'500'000);
  EXPECT_EQ(dead["HUGE-1"].payload, std::string(64 * 1024, '{'));
  EXPECT_EQ(dead["HUGE-1"].attempts, 1) << "poison is not retried";

  // A valid ticket whose routed form is over kafka.max_message_bytes (a million two-byte
  // characters): dead-lettered at once with the size reason, not retried or held. Sent alone, so
  // the embedded broker's 5 MiB per partition never drops a record still to be read.
  std::string wide_body;
  for (int i = 0; i < 1'048'576; ++i) wide_body += "\u00e9";
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.inbound,
                      {{"WIDE-1", ticketJson("WIDE-1", "", wide_body)}});
  const auto with_wide = testing::readUntilEveryKey(dlq, 8, 60s);
  ASSERT_EQ(with_wide.count("WIDE-1"), 1u);
  for (const auto& m : dlq.messages()) {
    auto d = parseDeadLetter(m.value);
    if (!d || d->key != "WIDE-1") continue;
    EXPECT_NE(d->error.find("over the message size limit"), std::string::npos) << d->error;
    EXPECT_EQ(d->attempts, 1);
    EXPECT_TRUE(d->payload_truncated);
  }

  const std::string lines = log.str();
  EXPECT_EQ(lines.find(secret), std::string::npos) << "ticket text never reaches the log";
}

}  // namespace
}  // namespace ticketflow
