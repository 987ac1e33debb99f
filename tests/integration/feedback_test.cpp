// Helpdesk feedback on the local stack: the tier role remembers each final answer, the feedback
// role turns corrections, resolutions and reopenings into training labels (once each), and bad or
// unknown feedback is dead-lettered or counted, never lost silently.
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures/kafka_io.hpp"
#include "fixtures/pipeline_run.hpp"
#include "local_stack/local_stack.hpp"
#include "pipeline/pipeline.hpp"
#include "ticketflow/redis/feedback_store.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;
using testing::optionsFor;
using testing::readTopic;
using testing::testConfig;

RoutedTicket routedTo(const std::string& id, const std::string& text) {
  RoutedTicket r;
  r.ticket.id = id;
  r.ticket.tenant = "acme";
  r.ticket.revision = 1;
  r.ticket.subject = "VPN";
  r.ticket.body = text;
  r.ticket.created_at = formatRfc3339(std::chrono::system_clock::now());
  r.ticket.metadata = {{"label", "Access"}};
  r.trace_id = "0123456789abcdef0123456789abcdef";
  r.received_at = r.ticket.created_at;
  r.classification = {"Access", 0.9, Difficulty::kEasy, 0.2, {{"Access", 0.9}}};
  r.tier = "fast";
  r.rule = "difficulty";
  r.route.routed_tier = "fast";
  return r;
}

std::string feedbackJson(const std::string& ticket, const std::string& fields) {
  return R"({"tenant": "acme", "ticket_id": ")" + ticket + R"(", "revision": 1)" +
         (fields.empty() ? "" : ", " + fields) + "}";
}

TEST(Feedback, CorrectionsResolutionsAndReopeningsBecomeLabelsOnce) {
  Config config = testConfig();
  config.cache.enabled = false;
  config.feedback.enabled = true;
  config.feedback.keep_text = true;
  for (auto& t : config.tiers) t.escalate_below_confidence = t.escalate_below_agreement = 0;  // answered at fast
  local_stack::LocalStackOptions local;
  local.latency_scale = 0;
  local_stack::LocalStack stack(config, local);
  std::ostringstream log;
  pipeline::Pipeline run(config, optionsFor({{pipeline::Role::kTier, "fast"}, {pipeline::Role::kFeedback, ""}}, &log));
  run.start();
  const std::vector<std::string> ids = {"FB-1", "FB-2", "FB-3"};
  for (const auto& id : ids)
    testing::produceAll(
        config.kafka.bootstrap_servers, config.kafka.tierTopic("fast"),
        {{id, toJson(routedTo(id, "I cannot log in to the VPN since my password expired (" + id + ")"))}});
  ASSERT_EQ(readTopic(config, config.kafka.topics.results, ids.size(), 60s).size(), ids.size())
      << log.str().substr(0, 3000);

  auto options = redis::RedisPoolOptions::fromConfig(config.redis);
  ASSERT_TRUE(options.ok());
  redis::FeedbackStore store(std::make_shared<redis::RedisPool>(*options), config.redis.key_prefix,
                             std::chrono::hours(1));
  std::optional<redis::AnswerRecord> first;
  for (int i = 0; i < 100 && !first; ++i) {  // remembered off the call thread
    for (const auto& id : ids) {
      auto a = store.answer("acme", id, 1);
      ASSERT_TRUE(a.ok());
      if (id == "FB-3" && *a) first = **a;
    }
    if (!first) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(first.has_value()) << "the final answer is remembered";
  EXPECT_EQ(first->tier, "fast");
  EXPECT_NE(first->text.find("VPN"), std::string::npos) << "feedback.keep_text keeps the text";
  auto one = store.answer("acme", "FB-1", 1);
  ASSERT_TRUE(one.ok() && one->has_value());
  const std::string other = (*one)->answer_category == "Purchase" ? "Hardware" : "Purchase";

  const std::vector<testing::Record> messages = {
      {"FB-1", feedbackJson("FB-1", R"("corrected_category": ")" + other + "\"")},
      {"FB-2", feedbackJson("FB-2", R"("reopened": true)")},
      {"FB-3", feedbackJson("FB-3", R"("resolved_by_reply": true)")},
      {"FB-1", feedbackJson("FB-1", R"("corrected_category": ")" + other + "\"")},  // redelivered: once
      {"FB-1", feedbackJson("FB-1", R"("corrected_assignment_group": "Network team")")},
      {"FB-404", feedbackJson("FB-404", R"("resolved_by_reply": false)")},
      {"FB-2", feedbackJson("FB-2", "")},  // says nothing: dead-lettered with the reason
  };
  testing::produceAll(config.kafka.bootstrap_servers, config.kafka.topics.feedback, messages);

  std::vector<classify::AgreementLabel> labels;
  for (int i = 0; i < 200 && labels.size() < 3; ++i) {
    auto read = store.escalationLabels();
    ASSERT_TRUE(read.ok());
    labels = *read;
    if (labels.size() < 3) std::this_thread::sleep_for(100ms);
  }
  const auto dlq = readTopic(config, config.kafka.topics.dlq, 1, 30s);
  ASSERT_EQ(labels.size(), 3u) << "three verdicts, the redelivered one counted once";
  int agreed = 0;
  for (const auto& l : labels) {
    EXPECT_EQ(l.tier, "fast");
    agreed += l.agreed;
  }
  EXPECT_EQ(agreed, 1)
      << "the correction to another category and the reopening are wrong answers, the resolution a right one";
  auto texts = store.categoryExamples();
  ASSERT_TRUE(texts.ok());
  ASSERT_EQ(texts->size(), 1u);
  EXPECT_EQ((*texts)[0].category, other);
  EXPECT_NE((*texts)[0].text.find("FB-1"), std::string::npos);
  ASSERT_EQ(dlq.size(), 1u) << "only the message that says nothing";
  auto letter = parseDeadLetter(dlq[0].value);
  ASSERT_TRUE(letter.ok());
  EXPECT_EQ(letter->stage, "feedback");
  EXPECT_FALSE(letter->error.empty());
  run.requestStop();
  EXPECT_TRUE(run.wait().ok());
}

}  // namespace
}  // namespace ticketflow
