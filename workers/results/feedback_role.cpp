#include "feedback_role.hpp"

namespace ticketflow::results {
namespace {

// Redis trouble holds the message (an outage, not an attempt used up).
Error held(const Error& e) {
  return e.retriable ? e.asOutage("redis") : e;
}

}  // namespace

FeedbackRole::FeedbackRole(redis::FeedbackStore& store, observability::PipelineMetrics* metrics,
                           observability::Logger* logger)
    : store_(store), metrics_(metrics), logger_(logger) {}

stage::Handler FeedbackRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    handle(*delivery, completion);
  };
}

void FeedbackRole::count(const char* result) {
  if (metrics_) metrics_->feedback.with({result}).inc();
}

void FeedbackRole::handle(const stage::Delivery& delivery, const stage::Completion& completion) {
  auto feedback = parseFeedback(delivery.message.value);
  if (!feedback) {
    count("invalid");
    return completion.fail(feedback.error());  // not retriable: dead letter with the reason
  }
  auto answer = store_.answer(feedback->tenant, feedback->ticket_id, feedback->revision);
  if (!answer) return completion.fail(held(answer.error()));
  if (!*answer) {
    count("no_answer");
    if (logger_)
      logger_->info(
          "feedback_without_answer",
          {{"tenant", feedback->tenant}, {"ticket_id", feedback->ticket_id}, {"revision", feedback->revision}});
    return completion.succeed();
  }
  const auto labels = redis::labelsFrom(*feedback, **answer);
  if (!labels.escalation && !labels.category) {
    count("no_label");  // e.g. only a new assignment group: nothing the models learn from yet
    return completion.succeed();
  }
  auto recorded = store_.record(*feedback, labels);
  if (!recorded) return completion.fail(held(recorded.error()));
  count(*recorded ? "labelled" : "duplicate");
  completion.succeed();
}

}  // namespace ticketflow::results
