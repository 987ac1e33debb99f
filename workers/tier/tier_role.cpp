#include "tier_role.hpp"

#include <algorithm>

#include "ticketflow/core/utf8.hpp"

namespace ticketflow::tier {

SettledCompletion::SettledCompletion(stage::Completion completion, std::shared_ptr<PendingSettles> settles,
                                     std::function<void()> after_ack)
    : completion_(std::move(completion)), settles_(std::move(settles)), after_ack_(std::move(after_ack)) {}

void SettledCompletion::succeed(std::vector<stage::OutputRecord> outputs) const {
  // Runs once: the outputs (the result's JSON) are moved on, not copied.
  settles_->whenSettled([completion = completion_, outputs = std::move(outputs), after_ack = after_ack_]() mutable {
    completion.succeed(std::move(outputs), std::move(after_ack));
  });
}

void SettledCompletion::fail(Error error) const {
  settles_->whenSettled(
      [completion = completion_, error = std::move(error)]() mutable { completion.fail(std::move(error)); });
}

TierRole::TierRole(const Config& config, TierService& service, int call_threads, const Clock& clock,
                   redis::SemanticCache* cache, observability::PipelineMetrics* metrics, observability::Logger* logger,
                   redis::InFlightRegistry* in_flight, redis::AgreementStore* agreement,
                   redis::RouteShareLoop* route_shares, redis::FeedbackStore* feedback)
    : config_(config),
      service_(service),
      clock_(clock),
      cache_(cache),
      in_flight_(config.cache.enabled && config.cache.coalesce_wait_ms > 0 ? in_flight : nullptr),
      agreement_(agreement),
      route_shares_(route_shares),
      feedback_(feedback),
      metrics_(metrics),
      logger_(logger),
      turns_(std::max(1, call_threads)),
      free_turns_(turns_),
      calls_(call_threads, "tf-call-" + service.name()) {}

stage::Handler TierRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    auto parsed = parseRoutedTicket(delivery->message.value);
    if (!parsed) return completion.fail(parsed.error());  // malformed: dead letter at once
    auto ticket = std::make_shared<TicketInHand>(TicketInHand{delivery, std::move(completion), std::move(*parsed)});
    takeTurn([this, ticket] { admit(ticket); });
  };
}

void TierRole::admit(const std::shared_ptr<TicketInHand>& ticket) {
  // Its first tier: the thresholds routing.targets holds now decide where it is answered.
  if (route_shares_ && ticket->routed.route.moves.empty()) {
    const auto& t = ticket->routed.ticket;
    const auto stamp = route_shares_->enroll(t.tenant + ":" + t.id + ":" + std::to_string(t.revision));
    ticket->routed.route.thresholds_version = stamp.version;
    ticket->routed.route.measured_for_shares = stamp.measured;
  }
  auto queue = [this, ticket](std::shared_ptr<EarlyAdmission> early) { queueCall(ticket, std::move(early)); };
  // The first call's admission round trip goes out before a call thread takes the ticket: that
  // thread then blocks once per call (on the model's reply), not twice.
  try {
    if (!service_.admitEarly(ticket->routed, ticket->delivery->attempt, queue)) queue(nullptr);
  } catch (const std::exception& e) {  // nothing was sent or queued: the turn comes back
    ticket->completion.fail(Error::internal(std::string("tier admission threw: ") + e.what()));
    giveTurnBack();
  }
}

void TierRole::queueCall(const std::shared_ptr<TicketInHand>& ticket, std::shared_ptr<EarlyAdmission> early) {
  calls_.submit([this, ticket, early = std::move(early)]() mutable {
    try {
      handle(*ticket->delivery, ticket->completion, ticket->routed, std::move(early));
    } catch (const std::exception& e) {
      ticket->completion.fail(Error::internal(std::string("tier call threw: ") + e.what()));
    }
    giveTurnBack();
  });
}

TierRole::~TierRole() {
  stop();
}

void TierRole::stop() {
  {
    std::unique_lock lock(turns_mutex_);
    stopping_ = true;
    waiting_for_turn_.clear();  // never started: redelivered, like the engine's uncommitted messages
    // A ticket with a turn may hold a rate-limit lease and a reservation (asked for early, its
    // call task not yet queued): it runs to the end, so both are given back.
    all_turns_back_.wait(lock, [this] { return free_turns_ == turns_; });
  }
  calls_.stop();
  counts_.stop();
}

void TierRole::bookkeep(std::function<void()> task) {
  if (counts_queued_.fetch_add(1) >= kMaxCounts) {  // Redis slow or away: a weight lost, nothing held
    --counts_queued_;
    return;
  }
  counts_.submit([this, task = std::move(task)] {
    task();
    --counts_queued_;
  });
}

void TierRole::countAnswer(const std::string& tier, const std::string& category, const Route& route) {
  const bool measured = route_shares_ && route.measured_for_shares;
  if (!agreement_ && !measured) return;
  bookkeep([this, tier, category, measured, thresholds_version = route.thresholds_version] {
    if (agreement_) (void)agreement_->countAnswered(tier, category);
    if (measured) route_shares_->answered(tier, category, thresholds_version);
  });
}

void TierRole::rememberAnswer(const RoutedTicket& routed, const TicketResult& result, const TierOutcome& outcome) {
  if (!feedback_) return;
  redis::AnswerRecord record;
  record.tier = result.tier;
  record.category = routed.classification.category;
  record.answer_category = answerCategory(result.answer, routed.classification);
  record.needs_human = result.answer.needs_human;
  record.features = outcome.features;
  if (config_.feedback.keep_text) record.text = routed.ticket.text();
  bookkeep([this, record = std::move(record), tenant = result.tenant, id = result.ticket_id,
            revision = result.revision] { (void)feedback_->remember(tenant, id, revision, record); });
}

void TierRole::takeTurn(const std::function<void()>& start) {
  {
    std::lock_guard lock(turns_mutex_);
    if (stopping_) return;
    if (free_turns_ == 0) {
      waiting_for_turn_.push_back(start);
      return;
    }
    --free_turns_;
  }
  start();
}

void TierRole::giveTurnBack() {
  std::function<void()> next;
  {
    std::lock_guard lock(turns_mutex_);
    if (stopping_ || waiting_for_turn_.empty()) {
      ++free_turns_;
      if (stopping_) all_turns_back_.notify_all();
      return;
    }
    next = std::move(waiting_for_turn_.front());
    waiting_for_turn_.pop_front();
  }
  next();  // the turn passes straight on
}

void TierRole::count(const std::string& outcome) {
  if (metrics_) metrics_->tier_outcomes.with({service_.name(), outcome}).inc();
}

void TierRole::applyBudgetPolicy(const RoutedTicket& routed, const TierOutcome& outcome,
                                 const SettledCompletion& completion) {
  const MicroUsd spent = routed.spent_micro_usd + outcome.spent_micro_usd;
  BudgetPolicy policy = outcome.budget_policy;
  const int index = config_.tierIndex(routed.tier);
  if (policy == BudgetPolicy::kDowngrade && index <= 0) policy = BudgetPolicy::kDefer;  // nothing cheaper
  if (metrics_) metrics_->budget_refusals.with({routed.tier, budgetPolicyName(policy)}).inc();
  switch (policy) {
    case BudgetPolicy::kDowngrade: {
      RoutedTicket down = routed;
      down.tier = config_.tiers[static_cast<std::size_t>(index) - 1].name;
      down.budget_state = BudgetState::kDowngraded;
      down.tier_visits = routed.tier_visits + 1;
      down.spent_micro_usd = spent;
      down.rule = utf8Prefix("budget_downgrade from " + routed.tier + ": " + outcome.reason, 200);
      down.route.move(routed.tier, down.tier, "budget_downgrade");
      count("downgraded");
      return completion.succeed({{config_.kafka.tierTopic(down.tier), routed.ticket.id, toJson(down), {}, {}}});
    }
    case BudgetPolicy::kDefer: {
      // Parked, not dead, and not in the way of other tenants: intake's parking stage sends it
      // back to this tier when the cap's period ends (a minute when only calls in flight filled
      // the cap), or at once on `ticketflow budget release`.
      count("deferred");
      const auto now = clock_.now();
      auto until =
          outcome.reservations_in_the_way ? std::nullopt : redis::BudgetLedger::periodEnd(outcome.exhausted_bucket);
      if (!until) until = now + std::chrono::minutes(1);
      RoutedTicket parked = routed;
      parked.budget_state = BudgetState::kDeferred;
      parked.spent_micro_usd = spent;
      parked.tier_visits = routed.tier_visits + 1;  // its return is a new visit: new requests
      if (logger_)
        logger_->info("ticket_parked", {{"ticket_id", routed.ticket.id},
                                        {"trace_id", routed.trace_id},
                                        {"tier", routed.tier},
                                        {"until", formatRfc3339(*until)},
                                        {"bucket", outcome.exhausted_bucket}});
      return completion.succeed({{config_.kafka.topics.deferred,
                                  routed.ticket.id,
                                  toJson(parked),
                                  {{kParkedAtHeader, formatRfc3339(now)},
                                   {kParkedUntilHeader, formatRfc3339(*until)},
                                   {kParkedReasonHeader, utf8Prefix(outcome.reason, 300)}},
                                  {}}});
    }
    case BudgetPolicy::kHuman: {
      count("human");
      const TicketResult r = handOffResult(routed, outcome.reason, spent, clock_.now());
      if (in_flight_)
        in_flight_->end(routed.ticket.tenant, routed.ticket.text(), routed.ticket.id);  // nothing to share
      return completion.succeed({{config_.kafka.topics.results, routed.ticket.id, toJson(r), {}, {}}});
    }
  }
}

std::optional<MicroUsd> TierRole::carriedFor(const std::string& key, int attempt) {
  std::lock_guard lock(carried_mutex_);
  auto it = carried_.find(key);
  if (it == carried_.end()) return std::nullopt;
  MicroUsd spent = 0;
  for (const auto& [a, s] : it->second.by_attempt)
    if (a != attempt) spent += s;  // this attempt's own run replayed what it paid for
  return spent;
}

void TierRole::forgetCarried(const std::string& key) {
  std::lock_guard lock(carried_mutex_);
  auto it = carried_.find(key);
  if (it == carried_.end()) return;
  carried_age_.erase(it->second.age);
  carried_.erase(it);
}

void TierRole::carry(const std::string& key, int attempt, MicroUsd spent) {
  std::lock_guard lock(carried_mutex_);
  auto it = carried_.find(key);
  if (it == carried_.end()) {
    if (spent <= 0) return;
    // Messages dead-lettered or moved to another consumer never come back for theirs.
    while (carried_.size() >= kMaxCarried) {
      auto oldest = carried_.find(carried_age_.front());
      MicroUsd dropped = 0;
      for (const auto& [a, s] : oldest->second.by_attempt) dropped += s;
      if (metrics_) metrics_->carried_cost_dropped.with({service_.name()}).inc(static_cast<double>(dropped));
      if (logger_) logger_->warn("carried_cost_dropped", {{"message", oldest->first}, {"micro_usd", dropped}});
      carried_.erase(oldest);
      carried_age_.pop_front();
    }
    carried_age_.push_back(key);
    it = carried_.emplace(key, Carried{{}, std::prev(carried_age_.end())}).first;
  }
  it->second.by_attempt[attempt] = spent;
}

void TierRole::handle(const stage::Delivery& delivery, const stage::Completion& engine, RoutedTicket& routed,
                      std::shared_ptr<EarlyAdmission> early) {
  const std::string attempts_key = delivery.message.topic + "/" + std::to_string(delivery.message.partition) + "/" +
                                   std::to_string(delivery.message.offset);
  auto outcome = service_.decide(routed, delivery.attempt, std::move(early));
  if (!outcome) return engine.fail(outcome.error());
  // Only a message with an earlier failed run has carried spend, forgotten once its outputs are
  // acknowledged (a failed produce runs the same attempt again); the rest need no hook.
  const std::optional<MicroUsd> earlier = carriedFor(attempts_key, delivery.attempt);
  std::function<void()> forget;
  if (earlier) forget = [this, attempts_key] { forgetCarried(attempts_key); };
  const SettledCompletion completion(engine, outcome->settles, std::move(forget));
  if (outcome->kind == TierOutcomeKind::kFailed) {
    carry(attempts_key, delivery.attempt, outcome->spent_micro_usd);
    count("failed");
    if (logger_)
      logger_->warn("tier_attempt_failed", {{"ticket_id", routed.ticket.id},
                                            {"trace_id", routed.trace_id},
                                            {"tier", routed.tier},
                                            {"attempt", delivery.attempt},
                                            {"error", outcome->failure->message}});
    return completion.fail(*outcome->failure);
  }
  if (earlier) {
    routed.spent_micro_usd += *earlier;
    outcome->result.cost_micro_usd += *earlier;
  }
  if (outcome->kind == TierOutcomeKind::kBudgetRefused) return applyBudgetPolicy(routed, *outcome, completion);
  if (outcome->kind == TierOutcomeKind::kEscalate) {
    RoutedTicket up = routed;
    up.tier = outcome->next_tier;
    // A move by routing.targets may go down: not an escalation.
    up.escalations = routed.escalations + (config_.tierIndex(up.tier) > config_.tierIndex(routed.tier) ? 1 : 0);
    up.tier_visits = routed.tier_visits + 1;
    up.spent_micro_usd = routed.spent_micro_usd + outcome->spent_micro_usd;
    up.rule = utf8Prefix("escalated from " + routed.tier + ": " + outcome->reason, 200);
    up.route.move(routed.tier, up.tier, outcome->escalation);
    count(outcome->escalation == "share_target" ? "moved" : "escalated");
    if (logger_)
      logger_->info("ticket_escalated",
                    {{"ticket_id", up.ticket.id}, {"trace_id", up.trace_id}, {"from", routed.tier}, {"to", up.tier}});
    std::vector<stage::OutputRecord> outputs = {
        {config_.kafka.tierTopic(up.tier), routed.ticket.id, toJson(up), {}, {}}};
    // A sampled answer the verifier doubted is compared too: without it the verifier's training
    // labels would only hold the answers it trusted.
    if (outcome->escalation == "verifier" && sampledForShadow(config_.shadow, routed, routed.tier)) {
      if (auto shadow = shadowRequest(routed, *outcome, true)) outputs.push_back(std::move(*shadow));
    }
    return completion.succeed(std::move(outputs));
  }
  TicketResult& result = outcome->result;  // its latency runs from intake's receipt (resultFor)
  count(result.degraded ? "degraded" : result.answer.needs_human ? "needs_human" : "answered");
  // Only full-strength answers are worth repeating to the next requester.
  if (cache_ && config_.cache.enabled && outcome->cacheable) {
    redis::CacheEntry entry;
    entry.answer_json = toCacheJson({result.answer, result.simulated});
    entry.model = result.model;
    entry.tier = result.tier;
    entry.cost_micro_usd = outcome->spent_micro_usd;
    entry.source_ticket_id = result.ticket_id;
    entry.category = result.classification.category;
    entry.created = clock_.now();
    cache_->insert(result.tenant, routed.ticket.text(), entry);  // Redis trouble: skipped, counted
  }
  // After the insert: a near-duplicate waiting for this answer finds it before the registration goes.
  if (in_flight_) in_flight_->end(result.tenant, routed.ticket.text(), routed.ticket.id);
  std::vector<stage::OutputRecord> outputs = {{config_.kafka.topics.results, routed.ticket.id, toJson(result), {}, {}}};
  countAnswer(result.tier, result.classification.category, routed.route);
  rememberAnswer(routed, result, *outcome);
  if (!result.degraded && sampledForShadow(config_.shadow, routed, result.tier)) {
    if (auto shadow = shadowRequest(routed, *outcome, false)) outputs.push_back(std::move(*shadow));
  }
  completion.succeed(std::move(outputs));
}

std::optional<stage::OutputRecord> TierRole::shadowRequest(const RoutedTicket& routed, const TierOutcome& outcome,
                                                           bool escalated) {
  if (config_.tierIndex(service_.name()) >= config_.tierIndex(config_.shadow.reference_tier)) return std::nullopt;
  const TicketResult& r = outcome.result;
  ShadowRequest shadow;
  shadow.routed = routed;
  shadow.tier = service_.name();
  shadow.model = r.model;
  shadow.answer_category = answerCategory(r.answer, routed.classification);
  shadow.needs_human = r.answer.needs_human;
  shadow.confidence = std::clamp(r.answer.confidence, 0.0, 1.0);
  shadow.agreement = outcome.agreement;
  shadow.features = outcome.features;
  shadow.escalated = escalated;
  count("shadow_sampled");
  return stage::OutputRecord{config_.kafka.topics.shadow, routed.ticket.id, toJson(shadow), {}, {}};
}

int callThreadsFor(const Config& config, const std::string& tier) {
  int threads = 0;
  if (const TierConfig* t = config.findTier(tier)) {
    for (const auto& name : t->models)
      if (const ModelConfig* m = config.findModel(name)) threads = std::max(threads, m->limits.max_concurrency);
  }
  return std::clamp(threads == 0 ? 64 : threads, 1, 512);
}

}  // namespace ticketflow::tier
