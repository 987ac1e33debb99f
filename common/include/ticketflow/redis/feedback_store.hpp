#pragma once
// FeedbackStore: helpdesk feedback as training labels, shared by every process.
//
// The tier roles remember what each final answer was (AnswerRecord: the tier, the classifier's
// category, the answer's category and needs_human, what the escalation verifier saw, and the
// ticket's text only with feedback.keep_text) for feedback.retention_days. The feedback role looks
// that up when the helpdesk says what became of the ticket, and records:
//   - an escalation label (classify::AgreementLabel: was the answer right?) when the feedback says:
//     a corrected category (right if it is the answer's), or resolved by the reply / reopened;
//   - a category label (text, corrected category) when the text was kept.
// Each feedback message counts once however often it is redelivered (a marker per tenant, ticket,
// revision and message digest, for the retention period).
//
// Keys: <prefix>feedback:answer:<tenant>:<ticket>:<revision> (JSON, retention), the streams
// <prefix>feedback:labels and <prefix>feedback:texts (capped at kMaxLabels, oldest dropped),
// <prefix>feedback:seen:<tenant>:<ticket>:<revision>:<digest>.
// Threading: thread-safe (the pool is).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

struct AnswerRecord {
  std::string tier;
  std::string category;         // the classifier's
  std::string answer_category;  // the answer's category_check (the classifier's when it gave none)
  bool needs_human = false;
  classify::AnswerFeatures features;
  std::string text;  // with feedback.keep_text only

  nlohmann::json toJson() const;
  static Result<AnswerRecord> fromJson(const nlohmann::json& j);
};

// A labelled text for the category model.
struct CategoryExample {
  std::string text, category;
};

// What one feedback message teaches, given the answer it is about.
struct FeedbackLabels {
  std::optional<classify::AgreementLabel> escalation;
  std::optional<CategoryExample> category;
};
// Right when the corrected category is the answer's; else right when resolved by the reply and
// not reopened, wrong when reopened or not resolved; nothing when the feedback says neither.
FeedbackLabels labelsFrom(const Feedback& feedback, const AnswerRecord& answer);

class FeedbackStore {
 public:
  static constexpr std::int64_t kMaxLabels = 200'000;
  FeedbackStore(std::shared_ptr<RedisPool> pool, std::string key_prefix, std::chrono::seconds retention);

  Status remember(const std::string& tenant, const std::string& ticket_id, std::int64_t revision,
                  const AnswerRecord& answer);
  // nullopt: never answered, or longer ago than the retention.
  Result<std::optional<AnswerRecord>> answer(const std::string& tenant, const std::string& ticket_id,
                                             std::int64_t revision);
  // Records the labels unless this message was recorded before: true if recorded now.
  Result<bool> record(const Feedback& feedback, const FeedbackLabels& labels);
  // The newest `limit` of each, oldest first.
  Result<std::vector<classify::AgreementLabel>> escalationLabels(std::int64_t limit = kMaxLabels);
  Result<std::vector<CategoryExample>> categoryExamples(std::int64_t limit = kMaxLabels);

 private:
  std::shared_ptr<RedisPool> pool_;
  std::string prefix_;
  std::chrono::seconds retention_;
};

}  // namespace ticketflow::redis
