#include "intake_role.hpp"

#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow::intake {

TicketTriager::TicketTriager(const Config& config, const classify::CategoryModel& model)
    : model_(model), difficulty_(config.classifier.difficulty), routing_(config) {}

TicketTriager::Decision TicketTriager::decide(
    const Ticket& ticket, const std::function<bool(const std::string&)>& over_budget,
    const std::function<classify::Thresholds(const std::string&)>& thresholds) const {
  thread_local classify::FeatureWorkspace workspace;
  thread_local classify::Prediction prediction;
  const std::string text = ticket.text();
  model_.predictInto(text, workspace, prediction);
  Decision d;
  d.classification.category = prediction.category;
  d.classification.confidence = prediction.confidence;
  for (std::size_t i = 0; i < prediction.probabilities.size(); ++i)
    d.classification.probabilities[model_.labels()[i]] = prediction.probabilities[i];
  auto difficulty = difficulty_.score(text, prediction.category);
  if (thresholds) difficulty.level = classify::levelFor(difficulty.score, thresholds(prediction.category));
  d.classification.difficulty = difficulty.level;
  d.classification.difficulty_score = difficulty.score;
  classify::RouteInput input{prediction.category, difficulty.level, prediction.confidence, ticket.tenant, {}};
  d.route = routing_.route(input);
  if (over_budget && over_budget(d.route.tier)) {
    input.budget.over_budget = true;
    d.route = routing_.route(input);
  }
  return d;
}

IntakeRole::IntakeRole(const Config& config, const classify::CategoryModel& model, redis::SemanticCache* cache,
                       observability::PipelineMetrics* metrics, const Clock& clock, observability::Logger* logger,
                       redis::BudgetLedger* ledger, redis::InFlightRegistry* in_flight,
                       redis::RouteShareLoop* route_shares)
    : config_(config),
      triager_(config, model),
      cache_(cache),
      metrics_(metrics),
      clock_(clock),
      logger_(logger),
      ledger_(ledger),
      in_flight_(config.cache.enabled && config.cache.coalesce_wait_ms > 0 ? in_flight : nullptr),
      route_shares_(route_shares) {}

IntakeRole::~IntakeRole() {
  // A recheck running now may schedule another: the timers go after it (declared last).
  rechecks_.stop();
}

struct IntakeRole::Waiting {
  RoutedTicket routed;
  TicketTriager::Decision decision;
  std::vector<kafka::Header> trace;
  stage::Completion completion;
  std::chrono::steady_clock::time_point give_up_at;
  std::chrono::milliseconds delay{250};
};

bool IntakeRole::overBudget(const std::string& tenant, const std::string& tier) {
  if (!ledger_) return false;
  const auto now = clock_.steadyNow();
  const auto key = std::make_pair(tenant, tier);
  {
    std::lock_guard lock(budget_mutex_);
    auto it = budget_seen_.find(key);
    if (it != budget_seen_.end() && now - it->second.at < std::chrono::seconds(1)) return it->second.over;
  }
  // A typical call on the tier's primary model: a 1,000-token prompt and its output allowance.
  const TierConfig* t = config_.findTier(tier);
  const ModelConfig* model = t ? config_.findModel(t->models.front()) : nullptr;
  if (!model) return false;
  auto room = ledger_->hasRoom(tenant, tier, redis::estimateCallCost(*model, 1000));
  const bool over = room.ok() && !*room;  // unknown (Redis down): route normally, the tier decides
  std::lock_guard lock(budget_mutex_);
  if (budget_seen_.size() > 10'000) budget_seen_.clear();
  budget_seen_[key] = {over, now};
  return over;
}

stage::Handler IntakeRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    handle(*delivery, completion);
  };
}

TicketResult cacheHitResult(const RoutedTicket& routed, const redis::CacheHit& hit, CachedAnswer cached,
                            const Clock& clock) {
  TicketResult r = resultFor(routed, clock.now());
  if (!hit.entry.tier.empty()) r.tier = hit.entry.tier;
  r.cache.status = hit.exact ? CacheStatus::kExact : CacheStatus::kSemantic;
  r.cache.similarity = std::min(1.0, std::max(0.0, hit.similarity));
  r.cache.source_ticket_id = hit.entry.source_ticket_id;
  r.cache.saved_micro_usd = hit.entry.cost_micro_usd;
  r.answer = std::move(cached.answer);
  r.simulated = cached.simulated;
  return r;
}

void IntakeRole::handle(const stage::Delivery& delivery, const stage::Completion& completion) {
  auto ticket = parseTicket(delivery.message.value);
  if (!ticket) {
    if (logger_)  // the key and the class only: the reason may quote the ticket
      logger_->warn("ticket_rejected", {{"key", utf8Prefix(delivery.message.key.value_or(""), 128)},
                                        {"error_class", errorCodeName(ticket.error().code)},
                                        {"offset", delivery.message.offset}});
    return completion.fail(ticket.error());  // not retriable: dead letter with the reason
  }
  const auto started = clock_.steadyNow();
  const auto decision = triager_.decide(
      *ticket, [&](const std::string& tier) { return overBudget(ticket->tenant, tier); },
      route_shares_ ? [this](const std::string& c) { return route_shares_->thresholdsFor(c); }
                    : std::function<classify::Thresholds(const std::string&)>{});
  if (metrics_)
    metrics_->classify_seconds.with({}).observe(std::chrono::duration<double>(clock_.steadyNow() - started).count());

  RoutedTicket routed;
  routed.ticket = std::move(*ticket);
  routed.trace_id = isTraceId(delivery.trace_id) ? delivery.trace_id : randomTraceId();
  routed.received_at = formatRfc3339(clock_.now());
  routed.classification = decision.classification;
  routed.tier = decision.route.tier;
  routed.route.routed_tier = routed.tier;
  routed.rule = utf8Prefix(decision.route.rule, 200);
  const std::vector<kafka::Header> trace = {{stage::kTraceIdHeader, routed.trace_id}};

  if (cache_ && config_.cache.enabled) {
    bool skipped = false;
    if (serveFromCache(routed, trace, completion, false, &skipped)) return;
    // Its near-duplicate is being answered now: wait for that answer rather than pay for another
    // (counted once, when the wait ends: coalesced or coalesce_gave_up).
    // An identical copy handled at this very moment holds the text's claim.
    const auto answered_by = [&]() -> std::optional<std::string> {
      const std::string text = routed.ticket.text();
      const std::string& category = routed.classification.category;
      if (auto other = in_flight_->answering(routed.ticket.tenant, category, text, routed.ticket.id)) return other;
      return in_flight_->claim(routed.ticket.tenant, text, routed.ticket.id);
    };
    if (in_flight_ && !skipped && decision.route.action == classify::RouteAction::kModel && answered_by()) {
      auto waiting = std::make_shared<Waiting>(
          Waiting{std::move(routed), decision, trace, completion, clock_.steadyNow() + in_flight_->maxWait()});
      return waitAgain(std::move(waiting));
    }
    if (metrics_) metrics_->cache_lookups.with({skipped ? "skipped" : "miss"}).inc();
  }
  route(std::move(routed), decision, trace, completion);
}

bool IntakeRole::serveFromCache(const RoutedTicket& routed, const std::vector<kafka::Header>& trace,
                                const stage::Completion& completion, bool coalesced, bool* skipped) {
  auto hit = cache_->lookup(routed.ticket.tenant, routed.classification.category, routed.ticket.text(), skipped);
  std::optional<CachedAnswer> answer;
  if (hit) {
    auto parsed = parseCachedAnswer(hit->entry.answer_json);
    if (parsed) answer = std::move(*parsed);
  }
  if (!answer) return false;  // the caller counts the miss once it knows what comes next
  if (metrics_) {
    metrics_->cache_lookups.with({coalesced ? "coalesced" : hit->exact ? "exact" : "semantic"}).inc();
    metrics_->cache_similarity.with({}).observe(hit->similarity);
    metrics_->cache_saved.with({}).inc(static_cast<double>(hit->entry.cost_micro_usd));
  }
  TicketResult result = cacheHitResult(routed, *hit, std::move(*answer), clock_);
  if (coalesced) result.cache.status = CacheStatus::kCoalesced;
  if (logger_)
    logger_->debug("ticket_cache_hit", {{"ticket_id", routed.ticket.id},
                                        {"trace_id", routed.trace_id},
                                        {"source_ticket_id", hit->entry.source_ticket_id},
                                        {"similarity", hit->similarity},
                                        {"coalesced", coalesced}});
  completion.succeed({{config_.kafka.topics.results, routed.ticket.id, toJson(result), trace, {}}});
  return true;
}

void IntakeRole::waitAgain(std::shared_ptr<Waiting> waiting) {
  const auto delay = waiting->delay;
  waiting->delay = std::min(waiting->delay * 2, std::chrono::milliseconds(1000));
  timers_.schedule(delay, [this, waiting = std::move(waiting)]() mutable {
    rechecks_.submit([this, waiting = std::move(waiting)] { recheck(waiting); });
  });
}

void IntakeRole::recheck(const std::shared_ptr<Waiting>& waiting) {
  const RoutedTicket& routed = waiting->routed;
  bool skipped = false;
  if (serveFromCache(routed, waiting->trace, waiting->completion, true, &skipped)) return;
  const bool still_answered = !skipped && clock_.steadyNow() < waiting->give_up_at &&
                              in_flight_->answering(routed.ticket.tenant, routed.classification.category,
                                                    routed.ticket.text(), routed.ticket.id);
  if (still_answered) return waitAgain(waiting);
  // The other ticket ended without an answer worth repeating, or took too long: ask a model.
  if (metrics_) metrics_->cache_lookups.with({"coalesce_gave_up"}).inc();
  route(waiting->routed, waiting->decision, waiting->trace, waiting->completion);
}

void IntakeRole::route(RoutedTicket routed, const TicketTriager::Decision& decision,
                       const std::vector<kafka::Header>& trace, const stage::Completion& completion) {
  if (decision.route.rule == "budget_downgrade") routed.budget_state = BudgetState::kDowngraded;
  if (decision.route.action == classify::RouteAction::kDefer) routed.budget_state = BudgetState::kDeferred;
  if (decision.route.action == classify::RouteAction::kHuman) {
    if (metrics_) metrics_->routed.with({"human", decision.route.rule}).inc();
    const TicketResult result = handOffResult(routed, "budget cap reached for tier " + routed.tier, 0, clock_.now());
    return completion.succeed({{config_.kafka.topics.results, routed.ticket.id, toJson(result), trace, {}}});
  }
  if (metrics_) metrics_->routed.with({routed.tier, decision.route.rule}).inc();
  if (logger_)
    logger_->debug("ticket_routed", {{"ticket_id", routed.ticket.id},
                                     {"trace_id", routed.trace_id},
                                     {"category", routed.classification.category},
                                     {"difficulty", difficultyName(routed.classification.difficulty)},
                                     {"tier", routed.tier},
                                     {"rule", decision.route.rule}});
  if (in_flight_ && decision.route.action == classify::RouteAction::kModel)
    in_flight_->begin(routed.ticket.tenant, routed.classification.category, routed.ticket.text(), routed.ticket.id);
  completion.succeed({{config_.kafka.tierTopic(routed.tier), routed.ticket.id, toJson(routed), trace, {}}});
}

}  // namespace ticketflow::intake
