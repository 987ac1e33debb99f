#include "tier_service.hpp"

#include <stdexcept>

#include "ticketflow/core/utf8.hpp"
#include "ticketflow/provider/answer_normaliser.hpp"

namespace ticketflow::tier {

ModelClientFactory httpModelClientFactory(const Config& config) {
  auto clients = std::make_shared<std::map<std::string, std::shared_ptr<http::HttpClient>>>();
  return [&config, clients](const ProviderConfig& provider, const ModelConfig& model) {
    const std::string key = provider::providerApiKey(config, provider);
    auto& http = (*clients)[provider.name];
    if (!http) http = std::make_shared<http::HttpClient>(http::providerClientOptions(provider, config.proxy));
    return provider::makeModelClient(provider, model, http, key);
  };
}

TierService::TierService(const Config& config, const std::string& tier, ModelClientFactory factory, const Clock& clock,
                         Sleeper sleeper, provider::PromptSet prompts, TierPolicy policy, CallAdmission admission,
                         observability::PipelineMetrics* metrics)
    : config_(config),
      tier_([&]() -> const TierConfig& {
        const TierConfig* t = config.findTier(tier);
        if (!t) throw std::invalid_argument("unknown tier '" + tier + "'");
        return *t;
      }()),
      clock_(clock),
      sleeper_(std::move(sleeper)),
      prompts_(std::move(prompts)),
      policy_(policy),
      admission_(admission),
      metrics_(metrics) {
  const int index = config.tierIndex(tier);
  if (index + 1 < static_cast<int>(config.tiers.size()))
    next_tier_ = config.tiers[static_cast<std::size_t>(index) + 1].name;
  for (const auto& name : tier_.models) {
    const ModelConfig* model = config.findModel(name);
    const ProviderConfig* prov = config.findProvider(model->provider);
    const bool degraded = std::find(tier_.degraded_fallbacks.begin(), tier_.degraded_fallbacks.end(), name) !=
                          tier_.degraded_fallbacks.end();
    std::unique_ptr<std::counting_semaphore<1 << 20>> slots;
    if (model->limits.max_concurrency > 0)
      slots = std::make_unique<std::counting_semaphore<1 << 20>>(model->limits.max_concurrency);
    chain_.push_back({model, prov, factory(*prov, *model),
                      std::make_unique<provider::CircuitBreaker>(policy_.breaker, clock_), degraded, std::move(slots)});
  }
  if (admission_.ledger)
    leases_ = std::make_unique<redis::ReservationLeases>(*admission_.ledger, admission_.owner_lease);
  if (tier_.max_escalation_share > 0)
    escalation_share_ = std::make_unique<EscalationShare>(tier_.max_escalation_share, tier_.escalate_below_agreement);
}

bool EscalationShare::admit(double score) {
  std::lock_guard lock(mutex_);
  const bool below = score < threshold_;
  // Below the share's quantile more often than `share`: the threshold comes down, and up if less.
  threshold_ = std::clamp(threshold_ + kStep * (share_ - (below ? 1.0 : 0.0)), 0.0, 1.0);
  return below;
}

double EscalationShare::threshold() const {
  std::lock_guard lock(mutex_);
  return threshold_;
}

provider::BreakerState TierService::breakerState(const std::string& model_name) {
  for (auto& e : chain_)
    if (e.model->name == model_name) return e.breaker->state();
  return provider::BreakerState::kClosed;
}

std::chrono::milliseconds TierService::nextDelay(int attempt, std::int64_t retry_after_ms) {
  std::lock_guard lock(rng_mutex_);
  return provider::backoffDelay(policy_.backoff, attempt, retry_after_ms, rng_);
}

void TierService::recordCall(const Entry& entry, const Result<provider::ModelReply>& reply,
                             std::chrono::steady_clock::duration took, bool usable) {
  if (!metrics_) return;
  const std::string& tier = tier_.name;
  const std::string& model = entry.model->name;
  const std::string& provider = entry.provider->name;
  std::string outcome = "ok";
  if (!reply) {
    switch (reply.error().code) {
      case ErrorCode::kRateLimited:
        outcome = "rate_limited";
        break;
      case ErrorCode::kTimeout:
        outcome = "timeout";
        break;
      case ErrorCode::kMalformed:
        outcome = "malformed";
        break;
      default:
        outcome = "error";
        break;
    }
  } else if (!usable) {
    outcome = "unusable";
  }
  metrics_->model_calls.with({tier, model, provider, outcome}).inc();
  metrics_->model_call_seconds.with({tier, model, provider}).observe(std::chrono::duration<double>(took).count());
  if (reply) {
    metrics_->tokens.with({tier, model, "input"}).inc(static_cast<double>(reply->usage.input_tokens));
    metrics_->tokens.with({tier, model, "output"}).inc(static_cast<double>(reply->usage.output_tokens));
    metrics_->cost.with({tier, model, provider}).inc(static_cast<double>(reply->cost_micro_usd));
  }
  const auto state = entry.breaker->state();
  metrics_->breaker_state.with({tier, model})
      .set(state == provider::BreakerState::kOpen       ? 2
           : state == provider::BreakerState::kHalfOpen ? 1
                                                        : 0);
}

Result<provider::ModelReply> TierService::callWithRetries(Entry& entry, provider::ModelRequest request,
                                                          TierOutcome& outcome, Answer& answer, CallContext& context,
                                                          EarlyAdmission* early) {
  Error last = Error::unavailable("not called");
  bool repaired = false;
  int ids_used_before = 0;
  bool breaker_granted = false;  // a skipped id keeps the breaker's leave (a half-open probe's too)
  for (int attempt = 1; attempt <= policy_.attempts_per_model; ++attempt) {
    // An early admission was asked for with the breaker's leave: it is not asked twice.
    EarlyAdmission* asked = attempt == 1 && !repaired && ids_used_before == 0 ? early : nullptr;
    if (!asked && !std::exchange(breaker_granted, false) && !entry.breaker->allow())
      return Error::unavailable(entry.model->name + ": circuit breaker open");
    const std::int64_t prompt_tokens = asked ? asked->prompt_tokens : provider::estimatePromptTokens(request);
    const int call = context.next_call++;
    const std::int64_t tokens = prompt_tokens + request.max_output_tokens;
    auto lease = admit(*entry.model, prompt_tokens, tokens, call, context, asked);
    // A cap refused only because calls in flight hold it at their worst case: wait (bounded)
    // for them to settle, usually below it, instead of downgrading or deferring early. The
    // refused id is asked again (a refusal is not final).
    auto waited = std::chrono::milliseconds(0);
    for (auto pause = std::chrono::milliseconds(50);
         !lease && context.refused && context.refused->reservations_in_the_way && waited < admission_.max_rate_wait;
         pause = std::min(pause * 2, std::chrono::milliseconds(1000))) {
      if (metrics_) metrics_->rate_limit_waits.with({entry.model->name, "budget_reservations"}).inc();
      sleeper_(pause);
      waited += pause;
      context.refused.reset();
      lease = admit(*entry.model, prompt_tokens, tokens, call, context, nullptr);
    }
    if (!lease) return lease.error();  // our own limit or budget, not the provider's fault: no breaker count
    const bool replayed = context.replay.has_value();
    // Should anything throw before finishCall(), the reservation is given back and no longer held
    // (a hold left behind would keep another process waiting on a call nobody makes).
    struct Unfinished {
      TierService& tier;
      const ModelConfig& model;
      const std::string& lease;
      CallContext& context;
      int call;
      bool pending;
      ~Unfinished() {
        if (pending) tier.finishCall(model, lease, context, call, nullptr);
      }
    } unfinished{*this, *entry.model, *lease, context, call, !replayed};
    Result<provider::ModelReply> reply = Error::internal("not called");
    std::chrono::steady_clock::duration took{};
    if (replayed) {
      // Sent and paid before this run (a redelivered or held ticket): its kept reply stands in
      // for the call, when this model sent it. Otherwise (the reply expired, or the chain took
      // another turn this time) its cost still counts and the next id is a new request.
      const redis::ReserveResult settled = std::move(*context.replay);
      context.replay.reset();
      auto stored = provider::parseStoredReply(settled.settled_reply);
      if (!stored || stored->model != entry.model->name) {
        outcome.spent_micro_usd += settled.settled_actual;
        ++outcome.calls;
        if (++ids_used_before > 64) return Error::internal("too many settled request ids before this run");
        breaker_granted = true;
        --attempt;
        continue;
      }
      entry.breaker->onSuccess();  // the probe the breaker granted needs no call
      ++outcome.calls;
      reply = std::move(stored->reply);
    } else {
      // Wait for a free slot no longer than a call could take anyway.
      if (entry.slots && !entry.slots->try_acquire_for(std::chrono::milliseconds(entry.provider->total_timeout_ms))) {
        unfinished.pending = false;
        finishCall(*entry.model, *lease, context, call, nullptr);
        return Error::timeout(entry.model->name + ": no free call slot (models[].limits.max_concurrency)");
      }
      const auto started = clock_.steadyNow();
      {
        struct SlotHeld {  // given back however complete() ends
          std::counting_semaphore<1 << 20>* slots;
          ~SlotHeld() {
            if (slots) slots->release();
          }
        } slot{entry.slots.get()};
        reply = entry.client->complete(request);
      }
      took = clock_.steadyNow() - started;
      // The lease back, and the reservation settled to the billed cost with the reply kept (or
      // released: nothing was spent), in one round trip. A failed release expires with its TTL.
      unfinished.pending = false;
      finishCall(*entry.model, *lease, context, call, reply ? &*reply : nullptr);
      observeLimits(*entry.model, reply);
      ++outcome.calls;
      if (attempt > 1 && metrics_) metrics_->model_retries.with({tier_.name, entry.model->name}).inc();
      if (!reply) {
        last = reply.error();
        // A 429 is the provider pacing us (the limiter adapts to it), not the provider failing.
        const bool provider_fault =
            (last.retriable && last.code != ErrorCode::kRateLimited) || last.code == ErrorCode::kUnavailable;
        if (provider_fault) {
          entry.breaker->onFailure();
        } else if (last.code == ErrorCode::kRateLimited) {
          entry.breaker->onSuccess();  // it answered: it is up
        }
        recordCall(entry, reply, took, false);
        if (!last.retriable) return last;
        if (attempt < policy_.attempts_per_model) sleeper_(nextDelay(attempt, last.retry_after_ms));
        continue;
      }
      entry.breaker->onSuccess();
    }
    outcome.spent_micro_usd += reply->cost_micro_usd;
    auto normalised = provider::normaliseAnswer(reply->content);
    if (replayed) {
      if (metrics_) metrics_->model_calls.with({tier_.name, entry.model->name, entry.provider->name, "replayed"}).inc();
    } else {
      recordCall(entry, reply, took, normalised.ok());
    }
    if (normalised) {
      answer = std::move(*normalised);
      return reply;
    }
    if (repaired) {  // one repair only; the caller escalates
      Error e = normalised.error();
      e.retriable = false;
      return e;
    }
    repaired = true;
    outcome.repaired = true;
    request.follow_up = {{"assistant", reply->content}, {"user", provider::repairInstruction(normalised.error())}};
    --attempt;  // a repair is not a transport retry
  }
  return last;
}

bool sampledForShadow(const ShadowConfig& shadow, const RoutedTicket& ticket, const std::string& tier) {
  const double share = shadow.sampleFor(ticket.classification.category);
  if (share <= 0) return false;
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a: stable across processes and builds
  for (const std::string& part :
       {ticket.ticket.tenant, ticket.ticket.id, std::to_string(ticket.ticket.revision), tier}) {
    for (unsigned char c : part) h = (h ^ c) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
  }
  h ^= h >> 33;  // FNV's low bits mix poorly; fold the high ones in
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) * 0x1.0p-53 < share;
}

classify::AnswerFeatures TierService::answerFeatures(const RoutedTicket& ticket, const Answer& answer, bool repaired) {
  classify::AnswerFeatures f;
  const Classification& c = ticket.classification;
  f.stated_confidence = answer.confidence;
  const std::string& category = answerCategory(answer, c);
  f.category_agrees = sameCategory(category, c.category);
  f.classifier_confidence = c.confidence;
  for (const auto& [name, p] : c.probabilities)
    if (sameCategory(name, category)) f.classifier_prob_of_answer = p;
  if (f.category_agrees && c.probabilities.empty()) f.classifier_prob_of_answer = c.confidence;
  f.repaired = repaired;
  f.needs_human = answer.needs_human;
  f.steps = static_cast<int>(answer.resolution_steps.size());
  f.difficulty_score = c.difficulty_score;
  return f;
}

Result<TierOutcome> TierService::handle(const RoutedTicket& ticket, int delivery_attempt) {
  auto outcome = decide(ticket, delivery_attempt);
  if (outcome) outcome->settles->wait();
  return outcome;
}

bool TierService::belowQualityFloor(const RoutedTicket& ticket) const {
  // The shadow sample is still answered here, so the measure goes on and the category can come back.
  return ticket.budget_state == BudgetState::kOk && !next_tier_.empty() && policy_.below_quality_floor &&
         policy_.below_quality_floor(ticket.classification.category) &&
         !sampledForShadow(config_.shadow, ticket, tier_.name);
}

std::optional<std::string> TierService::shareTargetTier(const RoutedTicket& ticket) const {
  if (!policy_.route_thresholds || ticket.rule != "difficulty" || !ticket.route.moves.empty() ||
      ticket.budget_state != BudgetState::kOk)
    return std::nullopt;
  const std::string& category = ticket.classification.category;
  const auto& routing = config_.routing;
  const auto level = classify::levelFor(ticket.classification.difficulty_score, policy_.route_thresholds(category));
  std::string tier = level == Difficulty::kEasy   ? routing.easy_tier
                     : level == Difficulty::kHard ? routing.hard_tier
                                                  : routing.medium_tier;
  // Never below a category's minimum tier (routing.min_tier_by_category).
  if (auto it = routing.min_tier_by_category.find(category);
      it != routing.min_tier_by_category.end() && config_.tierIndex(tier) < config_.tierIndex(it->second))
    tier = it->second;
  if (tier == tier_.name) return std::nullopt;
  return tier;
}

Result<TierOutcome> TierService::decide(const RoutedTicket& ticket, int delivery_attempt,
                                        std::shared_ptr<EarlyAdmission> early) {
  TierOutcome outcome;
  std::string failures;
  bool unusable_output = false;
  bool every_failure_transient = true;  // transport, 5xx, 429, open breakers, rate-limit waits
  CallContext context;
  outcome.settles = context.settles;
  context.budget_key = budgetKey(ticket, delivery_attempt);
  context.tenant = ticket.ticket.tenant;
  context.owner = early ? early->owner : redis::ReservationLeases::newOwner();
  // A ticket a cap sent down must not climb back up: that would undo the downgrade.
  const std::string next_tier = ticket.budget_state == BudgetState::kOk ? next_tier_ : std::string();
  // The thresholds in force put it on another tier, or this tier was measured below the quality
  // floor in its category: on without a call. A ticket admitted early was neither (admitEarly
  // asked first): its admission is used rather than left to expire.
  if (auto target = early ? std::nullopt : shareTargetTier(ticket)) {
    outcome.kind = TierOutcomeKind::kEscalate;
    outcome.next_tier = *target;
    outcome.escalation = "share_target";
    char buf[96];
    std::snprintf(buf, sizeof buf, "difficulty %.3f", ticket.classification.difficulty_score);
    outcome.reason = std::string(buf) + " belongs to " + *target + " under the thresholds routing.targets holds now";
    return outcome;
  }
  if (!early && belowQualityFloor(ticket)) {
    outcome.kind = TierOutcomeKind::kEscalate;
    outcome.next_tier = next_tier;
    outcome.escalation = "quality_floor";
    outcome.reason = "shadow agreement of " + tier_.name + " on " + ticket.classification.category +
                     " is below shadow.quality_floor";
    return outcome;
  }
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    Entry& entry = chain_[i];
    EarlyAdmission* asked = i == 0 ? early.get() : nullptr;
    auto request =
        asked ? std::move(asked->request)
              : provider::buildModelRequest(prompts_, ticket.ticket, ticket.classification.category, *entry.model);
    const std::int64_t ticket_chars_cut = request.ticket_chars_cut;
    Answer answer;
    auto reply = callWithRetries(entry, std::move(request), outcome, answer, context, asked);
    if (context.abort) {  // Redis is down: the ticket waits for it (held, no attempt used)
      outcome.kind = TierOutcomeKind::kFailed;
      outcome.failure = context.abort->retriable ? context.abort->asOutage("redis") : *context.abort;
      return outcome;
    }
    if (context.refused) {
      outcome.kind = TierOutcomeKind::kBudgetRefused;
      outcome.budget_policy = context.refused->policy;
      outcome.exhausted_bucket = context.refused->exhausted_bucket;
      outcome.reservations_in_the_way = context.refused->reservations_in_the_way;
      outcome.reason = "budget " + context.refused->exhausted_bucket + " has no room for " + entry.model->name;
      return outcome;
    }
    if (!reply) {
      failures += (failures.empty() ? "" : "; ") + entry.model->name + ": " + reply.error().message;
      every_failure_transient = every_failure_transient && reply.error().retriable;
      unusable_output = unusable_output || reply.error().code == ErrorCode::kMalformed ||
                        reply.error().code == ErrorCode::kSchemaViolation;
      continue;
    }
    // Low confidence goes one tier up while there is one; on the last tier a human takes over.
    bool low_confidence = false;
    if (answer.confidence < tier_.escalate_below_confidence) {
      low_confidence = true;
      if (!next_tier.empty()) {
        outcome.kind = TierOutcomeKind::kEscalate;
        outcome.next_tier = next_tier;
        outcome.escalation = "low_confidence";
        outcome.reason =
            entry.model->name + " answered with confidence below " + std::to_string(tier_.escalate_below_confidence);
        return outcome;
      }
      answer.needs_human = true;
      if (answer.needs_human_reason.empty())
        answer.needs_human_reason = next_tier_.empty()
                                        ? "low confidence on the last tier"
                                        : "low confidence, and a budget cap keeps the ticket on this tier";
    }
    outcome.features = answerFeatures(ticket, answer, outcome.repaired);
    if (tier_.escalate_below_agreement > 0 && !low_confidence && !next_tier.empty()) {
      const auto& verifier = policy_.verifier ? *policy_.verifier : classify::EscalationModel::builtin();
      outcome.agreement = verifier.agreement(tier_.name, outcome.features);
      // Below the tier's threshold, and (with max_escalation_share) among its most doubtful answers.
      const bool doubtful = *outcome.agreement < tier_.escalate_below_agreement;
      const bool up = escalation_share_ ? escalation_share_->admit(*outcome.agreement) && doubtful : doubtful;
      if (metrics_) {
        metrics_->verifier_agreement.with({tier_.name}).observe(*outcome.agreement);
        metrics_->verifier_decisions.with({tier_.name, up ? "escalated" : doubtful ? "share_kept" : "kept"}).inc();
        if (escalation_share_) metrics_->escalation_threshold.with({tier_.name}).set(escalation_share_->threshold());
      }
      if (up) {
        outcome.kind = TierOutcomeKind::kEscalate;
        outcome.next_tier = next_tier;
        outcome.escalation = "verifier";
        char buf[96];
        std::snprintf(buf, sizeof buf, " is %.3f, below %.3f", *outcome.agreement, tier_.escalate_below_agreement);
        outcome.reason = "the verifier's estimate that " + next_tier + " would agree with " + entry.model->name + buf;
        outcome.result.model = entry.model->name;  // the answer judged, for shadow evaluation's labels
        outcome.result.answer = std::move(answer);
        return outcome;
      }
    }
    outcome.result = resultFor(ticket, clock_.now());
    TicketResult& r = outcome.result;
    r.tier = tier_.name;
    r.model = entry.model->name;
    r.provider = entry.provider->name;
    r.answer = std::move(answer);
    r.cost_micro_usd = ticket.spent_micro_usd + outcome.spent_micro_usd;
    r.usage = reply->usage;
    r.attempts = outcome.calls;
    r.simulated = reply->simulated;
    r.degraded = entry.degraded;
    r.ticket_chars_cut = ticket_chars_cut;
    outcome.cacheable = !entry.degraded && !low_confidence;
    if (entry.degraded) {
      r.degraded_reason = utf8Prefix("answered by fallback " + entry.model->name + " after: " + failures, 500);
      outcome.reason = r.degraded_reason;
    }
    return outcome;
  }
  if (unusable_output && !next_tier.empty()) {
    outcome.kind = TierOutcomeKind::kEscalate;
    outcome.next_tier = next_tier;
    outcome.escalation = "unusable_answer";
    outcome.reason = "no usable answer: " + failures;
    return outcome;
  }
  // Every model failed for now. Tell the engine when trying again makes sense: when the first
  // open breaker lets a probe through (no sooner than its own backoff).
  Error error = Error::unavailable("tier " + tier_.name + " exhausted its model chain: " + failures);
  std::chrono::milliseconds soonest{0};
  for (auto& e : chain_) {
    const auto wait = e.breaker->retryAfter();
    if (wait.count() > 0 && (soonest.count() == 0 || wait < soonest)) soonest = wait;
  }
  if (soonest.count() > 0) error.retry_after_ms = soonest.count();
  // Only models that are down make it an outage (held until they are back); a model that
  // refused the ticket itself (a permanent 4xx, unusable output) uses the stage's attempts.
  if (every_failure_transient) error = std::move(error).asOutage("provider");
  outcome.kind = TierOutcomeKind::kFailed;
  outcome.failure = std::move(error);
  return outcome;
}

}  // namespace ticketflow::tier
