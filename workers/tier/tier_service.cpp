#include "tier_service.hpp"

#include <stdexcept>

#include "ticketflow/provider/answer_normaliser.hpp"

namespace ticketflow::tier {

ModelClientFactory httpModelClientFactory(const Config& config) {
  auto clients = std::make_shared<std::map<std::string, std::shared_ptr<http::HttpClient>>>();
  return [&config, clients](const ProviderConfig& provider, const ModelConfig& model) {
    std::string key;
    if (!provider.api_key_env.empty()) {
      auto value = processEnv(provider.api_key_env);
      if (!value || value->empty()) {
        std::size_t index = 0;
        while (index < config.providers.size() && config.providers[index].name != provider.name) ++index;
        throw ConfigError(config.source, "providers[" + std::to_string(index) + "].api_key_env",
                          "environment variable " + provider.api_key_env + " is not set");
      }
      key = *value;
    }
    auto& http = (*clients)[provider.name];
    if (!http) {
      http::HttpClientOptions options;
      options.connect_timeout = std::chrono::milliseconds(provider.connect_timeout_ms);
      options.read_timeout = std::chrono::milliseconds(provider.read_timeout_ms);
      options.total_timeout = std::chrono::milliseconds(provider.total_timeout_ms);
      options.max_connections = provider.max_connections;
      options.proxy = config.proxy;
      http = std::make_shared<http::HttpClient>(options);
    }
    return provider::makeModelClient(provider, model, http, key);
  };
}

TierService::TierService(const Config& config, const std::string& tier, ModelClientFactory factory,
                         const Clock& clock, Sleeper sleeper, provider::PromptSet prompts, TierPolicy policy)
    : config_(config),
      tier_([&]() -> const TierConfig& {
        const TierConfig* t = config.findTier(tier);
        if (!t) throw std::invalid_argument("unknown tier '" + tier + "'");
        return *t;
      }()),
      clock_(clock),
      sleeper_(std::move(sleeper)),
      prompts_(std::move(prompts)),
      policy_(policy) {
  const int index = config.tierIndex(tier);
  if (index + 1 < static_cast<int>(config.tiers.size())) next_tier_ = config.tiers[static_cast<std::size_t>(index) + 1].name;
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

Result<provider::ModelReply> TierService::callWithRetries(Entry& entry, provider::ModelRequest request,
                                                          TierOutcome& outcome, Answer& answer) {
  Error last = Error::unavailable("not called");
  bool repaired = false;
  for (int attempt = 1; attempt <= policy_.attempts_per_model; ++attempt) {
    if (!entry.breaker->allow()) return Error::unavailable(entry.model->name + ": circuit breaker open");
    // Wait for a free slot no longer than a call could take anyway.
    if (entry.slots && !entry.slots->try_acquire_for(std::chrono::milliseconds(entry.provider->total_timeout_ms)))
      return Error::timeout(entry.model->name + ": no free call slot (models[].limits.max_concurrency)");
    auto reply = entry.client->complete(request);
    if (entry.slots) entry.slots->release();
    ++outcome.calls;
    if (!reply) {
      last = reply.error();
      const bool provider_fault = last.retriable || last.code == ErrorCode::kUnavailable;
      if (provider_fault) entry.breaker->onFailure();
      if (!last.retriable) return last;
      if (attempt < policy_.attempts_per_model) sleeper_(nextDelay(attempt, last.retry_after_ms));
      continue;
    }
    entry.breaker->onSuccess();
    outcome.spent_micro_usd += reply->cost_micro_usd;
    auto normalised = provider::normaliseAnswer(reply->content);
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
    request.follow_up = {{"assistant", reply->content}, {"user", provider::repairInstruction(normalised.error())}};
    --attempt;  // a repair is not a transport retry
  }
  return last;
}

Result<TierOutcome> TierService::handle(const RoutedTicket& ticket) {
  TierOutcome outcome;
  const auto started = clock_.steadyNow();
  std::string failures;
  bool unusable_output = false;
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    Entry& entry = chain_[i];
    auto request = provider::buildModelRequest(prompts_, ticket.ticket, ticket.classification.category,
                                               entry.model->max_output_tokens);
    Answer answer;
    auto reply = callWithRetries(entry, std::move(request), outcome, answer);
    if (!reply) {
      failures += (failures.empty() ? "" : "; ") + entry.model->name + ": " + reply.error().message;
      unusable_output = unusable_output || reply.error().code == ErrorCode::kMalformed ||
                        reply.error().code == ErrorCode::kSchemaViolation;
      continue;
    }
    // Low confidence goes one tier up while there is one; on the last tier a human takes over.
    if (answer.confidence < tier_.escalate_below_confidence) {
      if (!next_tier_.empty()) {
        outcome.kind = TierOutcomeKind::kEscalate;
        outcome.next_tier = next_tier_;
        outcome.reason = entry.model->name + " answered with confidence below " +
                         std::to_string(tier_.escalate_below_confidence);
        return outcome;
      }
      answer.needs_human = true;
      if (answer.needs_human_reason.empty()) answer.needs_human_reason = "low confidence on the last tier";
    }
    TicketResult& r = outcome.result;
    r.ticket_id = ticket.ticket.id;
    r.tenant = ticket.ticket.tenant;
    r.revision = ticket.ticket.revision;
    r.source = ticket.ticket.source;
    r.trace_id = ticket.trace_id;
    r.classification = ticket.classification;
    r.tier = tier_.name;
    r.model = entry.model->name;
    r.provider = entry.provider->name;
    r.answer = std::move(answer);
    r.cost_micro_usd = outcome.spent_micro_usd;
    r.usage = reply->usage;
    r.attempts = outcome.calls;
    r.simulated = reply->simulated;
    r.degraded = entry.degraded;
    if (entry.degraded) {
      r.degraded_reason = "answered by fallback " + entry.model->name + " after: " + failures;
      outcome.reason = r.degraded_reason;
    }
    r.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steadyNow() - started).count();
    r.completed_at = formatRfc3339(clock_.now());
    return outcome;
  }
  if (unusable_output && !next_tier_.empty()) {
    outcome.kind = TierOutcomeKind::kEscalate;
    outcome.next_tier = next_tier_;
    outcome.reason = "no usable answer: " + failures;
    return outcome;
  }
  return Error::unavailable("tier " + tier_.name + " exhausted its model chain: " + failures);
}

}  // namespace ticketflow::tier
