#pragma once
// The feedback role: consumes kafka.topics.feedback (schemas/feedback.schema.json: a corrected
// category or assignment group, whether the reply resolved the ticket, whether it was reopened)
// and turns each message into training labels (redis/feedback_store.hpp) for
// `ticketflow train --feedback` (the category model, from corrected categories when
// feedback.keep_text kept the text) and `ticketflow train escalation --feedback` (the escalation
// verifier: was the answer right?).
//
// A message that does not match the schema is dead-lettered with the reason. One about a ticket
// never answered, or answered longer ago than feedback.retention_days, teaches nothing: counted
// (ticketflow_feedback_total{result="no_answer"}) and committed. Redis down: held, nothing lost.
// A redelivered message counts once.
//
// Threading: the handler runs on the stage's worker threads (two Redis round trips per message).

#include "ticketflow/config/config.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/feedback_store.hpp"
#include "ticketflow/stage/stage.hpp"

namespace ticketflow::results {

class FeedbackRole {
 public:
  // `metrics` and `logger` may be null.
  FeedbackRole(redis::FeedbackStore& store, observability::PipelineMetrics* metrics = nullptr,
               observability::Logger* logger = nullptr);
  stage::Handler handler();

 private:
  void handle(const stage::Delivery& delivery, const stage::Completion& completion);
  void count(const char* result);

  redis::FeedbackStore& store_;
  observability::PipelineMetrics* metrics_;
  observability::Logger* logger_;
};

}  // namespace ticketflow::results
