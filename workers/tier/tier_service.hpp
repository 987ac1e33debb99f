#pragma once
// What a tier pool does with one routed ticket: walk the tier's model chain (primary, then
// fallbacks; answers from degraded fallbacks are flagged), retry transient failures with backoff
// and jitter honouring retry-after, skip models whose circuit breaker is open, repair an unusable
// reply once, and decide: answered, escalate to the next tier (low confidence, or unusable
// output), or fail retriably when every model of the chain is down (the stage engine retries and
// finally dead-letters). Thread-safe: one service serves all of a process's calls to its tier.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <semaphore>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/provider/model_client.hpp"
#include "ticketflow/provider/prompt.hpp"
#include "ticketflow/provider/resilience.hpp"

namespace ticketflow::tier {

struct TierPolicy {
  int attempts_per_model = 3;  // calls to one model before falling back to the next
  provider::BackoffPolicy backoff;
  provider::BreakerPolicy breaker;
};

enum class TierOutcomeKind { kAnswered, kEscalate };

struct TierOutcome {
  TierOutcomeKind kind = TierOutcomeKind::kAnswered;
  TicketResult result;     // kAnswered
  std::string next_tier;   // kEscalate
  std::string reason;      // why it escalated, or why the answer is degraded
  int calls = 0;           // model calls made
  MicroUsd spent_micro_usd = 0;  // spent on calls, including unusable replies
};

// Creates the client for one chain entry (the production factory sends real HTTP).
using ModelClientFactory =
    std::function<std::unique_ptr<provider::ModelClient>(const ProviderConfig&, const ModelConfig&)>;
// The production factory: one keep-alive HTTP client per provider (its timeouts, the proxy
// settings) and the API key from the provider's api_key_env. Throws ConfigError naming the
// provider's field when that variable is unset.
ModelClientFactory httpModelClientFactory(const Config& config);

// Waits for a backoff delay (tests pass one that records instead of sleeping).
using Sleeper = std::function<void(std::chrono::milliseconds)>;

class TierService {
 public:
  // Throws std::invalid_argument if `tier` is not configured.
  TierService(const Config& config, const std::string& tier, ModelClientFactory factory, const Clock& clock,
              Sleeper sleeper, provider::PromptSet prompts, TierPolicy policy = {});

  // Errors are retriable (kUnavailable) when no model of the chain could answer for transient
  // reasons; the message lists what each model said.
  Result<TierOutcome> handle(const RoutedTicket& ticket);

  provider::BreakerState breakerState(const std::string& model_name);

 private:
  struct Entry {
    const ModelConfig* model;
    const ProviderConfig* provider;
    std::unique_ptr<provider::ModelClient> client;
    std::unique_ptr<provider::CircuitBreaker> breaker;
    bool degraded;
    // Calls in flight to this model from this process (models[].limits.max_concurrency); null
    // when unlimited.
    std::unique_ptr<std::counting_semaphore<1 << 20>> slots;
  };
  // One model, with retries; an unusable reply is repaired once. Errors mean "try the next".
  Result<provider::ModelReply> callWithRetries(Entry& entry, provider::ModelRequest request, TierOutcome& outcome,
                                               Answer& answer);
  std::chrono::milliseconds nextDelay(int attempt, std::int64_t retry_after_ms);

  const Config& config_;
  const TierConfig& tier_;
  std::string next_tier_;  // empty for the last tier
  const Clock& clock_;
  Sleeper sleeper_;
  provider::PromptSet prompts_;
  TierPolicy policy_;
  std::vector<Entry> chain_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace ticketflow::tier
