#include "shadow_role.hpp"

namespace ticketflow::tier {

Config withShadowTier(const Config& config) {
  Config shadow = config;
  const TierConfig* reference = config.findTier(config.shadow.reference_tier);
  if (!reference) throw ConfigError(config.source, "shadow.reference_tier", "not a configured tier");
  TierConfig tier = *reference;
  tier.name = kShadowTier;
  tier.escalate_below_agreement = 0;        // the reference is not second-guessed
  shadow.tiers.push_back(std::move(tier));  // last: it has no tier to escalate to
  return shadow;
}

QualityFloor::QualityFloor(const ShadowConfig& shadow, redis::AgreementStore& store, const Clock& clock,
                           std::chrono::milliseconds refresh)
    : shadow_(shadow), store_(store), clock_(clock), refresh_(refresh) {}

bool QualityFloor::below(const std::string& tier, const std::string& category) {
  // Unmeasured categories are never held below: nothing could bring them back.
  if (shadow_.quality_floor <= 0 || shadow_.sampleFor(category) <= 0) return false;
  const auto now = clock_.steadyNow();
  bool refresh = false;
  {
    std::lock_guard lock(mutex_);
    if (!reading_ && (!read_ || now - read_at_ >= refresh_)) refresh = reading_ = true;
  }
  if (refresh) {  // one thread reads Redis, outside the lock; the others use the table they have
    auto table = store_.table();
    std::lock_guard lock(mutex_);
    reading_ = false;
    read_at_ = now;
    if (table) {
      table_ = std::move(*table);
      read_ = true;
    }
  }
  std::lock_guard lock(mutex_);
  auto t = table_.find(tier);
  if (t == table_.end()) return false;
  auto c = t->second.find(category);
  if (c == t->second.end()) return false;
  const redis::Proportion& both = c->second.both;
  return both.trials >= shadow_.min_comparisons && both.upper() < shadow_.quality_floor;
}

ShadowRole::ShadowRole(const Config& config, TierService& service, redis::AgreementStore& store, int threads,
                       observability::PipelineMetrics* metrics, observability::Logger* logger)
    : config_(config),
      service_(service),
      store_(store),
      metrics_(metrics),
      logger_(logger),
      pool_(threads, "tf-shadow") {}

stage::Handler ShadowRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    auto request = parseShadowRequest(delivery->message.value);
    if (!request) return completion.fail(request.error());  // poison: dead-lettered with the reason
    pool_.submit([this, request = std::move(*request), attempt = delivery->attempt, completion] {
      compare(request, attempt, completion);
    });
  };
}

void ShadowRole::compare(const ShadowRequest& request, int attempt, const stage::Completion& completion) {
  auto skip = [&](const char* reason) {
    if (metrics_) metrics_->shadow_skipped.with({reason}).inc();
    completion.succeed({});
  };
  RoutedTicket routed = request.routed;
  routed.tier = kShadowTier;
  routed.budget_state = BudgetState::kOk;
  routed.tier_visits = 0;
  routed.spent_micro_usd = 0;
  auto outcome = service_.handle(routed, attempt);  // returns once its calls are settled
  if (!outcome) return completion.fail(outcome.error());
  switch (outcome->kind) {
    case TierOutcomeKind::kFailed:
      // Every reference model down (an outage) or Redis away: held until they are back. A reply
      // the reference could not make usable is no comparison; asking again would pay again.
      if (!outcome->failure->outage.empty()) return completion.fail(*outcome->failure);
      return skip("no_answer");
    case TierOutcomeKind::kBudgetRefused:
      return skip("budget");
    case TierOutcomeKind::kEscalate:
      return skip("no_answer");  // the reference tier is last: not reached
    case TierOutcomeKind::kAnswered:
      break;
  }
  // A fallback model's answer (degraded_fallbacks) is not the reference's: it may be the very
  // model being judged.
  if (outcome->result.degraded) return skip("degraded");
  const Answer& reference = outcome->result.answer;
  redis::ShadowComparison c;
  c.tenant = routed.ticket.tenant;
  c.ticket_id = routed.ticket.id;
  c.revision = routed.ticket.revision;
  c.category_agrees = sameCategory(request.answer_category, answerCategory(reference, routed.classification));
  c.needs_human_agrees = request.needs_human == reference.needs_human;
  c.label = {request.tier, routed.classification.category, request.features, c.category_agrees && c.needs_human_agrees};
  c.final_answer = !request.escalated;
  auto counted = store_.record(c);
  if (!counted) {  // tried again (the paid reply is replayed then); held while Redis is away
    Error e = counted.error();
    return completion.fail(e.retriable ? std::move(e).asOutage("redis") : e);
  }
  if (*counted && c.final_answer && metrics_) {
    auto add = [&](const char* field, bool agrees) {
      metrics_->shadow_comparisons.with({request.tier, c.label.category, field, agrees ? "agree" : "disagree"}).inc();
    };
    add("category", c.category_agrees);
    add("needs_human", c.needs_human_agrees);
    add("both", c.label.agreed);
  }
  if (logger_)
    logger_->info("shadow_compared", {{"ticket_id", routed.ticket.id},
                                      {"trace_id", routed.trace_id},
                                      {"tier", request.tier},
                                      {"reference_model", outcome->result.model},
                                      {"category_agrees", c.category_agrees},
                                      {"needs_human_agrees", c.needs_human_agrees},
                                      {"counted", *counted},
                                      {"escalated", request.escalated}});
  completion.succeed({});
}

}  // namespace ticketflow::tier
