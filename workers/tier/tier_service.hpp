#pragma once
// What a tier pool does with one routed ticket: walk the tier's model chain (primary, then
// fallbacks; answers from degraded fallbacks are flagged), retry transient failures with backoff
// and jitter honouring retry-after, skip models whose circuit breaker is open, repair an unusable
// reply once, and decide: answered, escalate to the next tier (low confidence, or unusable
// output), or fail retriably when every model of the chain is down (the stage engine retries and
// finally dead-letters). Thread-safe: one service serves all of a process's calls to its tier.
//
// Admission (optional, both in Redis so every replica shares them): each call first waits for the
// cluster-wide rate limiter (fail closed: a Redis outage fails the ticket as an outage, and the
// stage holds it until Redis is back), then reserves its estimated cost in the budget ledger; a
// reply settles the reservation to the billed cost and keeps the reply, a failure releases it.
// One ledger id per provider request: "<tenant>:<ticket>:<revision>:<tier>:v<visit>:a<delivery
// attempt>" + "#<call>", the call number advancing with every admission. A redelivered or
// re-run ticket walks the same ids: a settled one replays its kept reply (no second request,
// no second charge), a released one is a new request. A cap without room ends the chain with
// kBudgetRefused: the role applies budgets.on_exhausted.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <semaphore>
#include <string>
#include <vector>

#include "ticketflow/classify/difficulty.hpp"
#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/provider/model_client.hpp"
#include "ticketflow/provider/prompt.hpp"
#include "ticketflow/provider/resilience.hpp"
#include "ticketflow/redis/batcher.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/rate_limiter.hpp"
#include "ticketflow/redis/reservation_leases.hpp"

namespace ticketflow::tier {

struct TierPolicy {
  int attempts_per_model = 3;  // calls to one model before falling back to the next
  provider::BackoffPolicy backoff;
  provider::BreakerPolicy breaker;
  // The escalation verifier, used when tiers[].escalate_below_agreement > 0 (null: the built-in one).
  const classify::EscalationModel* verifier = nullptr;
  // Whether shadow evaluation measured this tier's answers in a category below shadow.quality_floor
  // (null: never): such tickets go up without a call, but for the shadow sample, which keeps the
  // measure going.
  std::function<bool(const std::string& category)> below_quality_floor;
  // routing.targets: the difficulty thresholds in force for a category (redis::RouteShareLoop). A
  // ticket routed by difficulty alone that they now put on another tier moves there on arrival,
  // without a call (reason share_target): in a backlog, tickets were routed long before a tier
  // takes them, so the thresholds are applied again where the answer is made. Null: never.
  std::function<classify::Thresholds(const std::string& category)> route_thresholds;
};

// Whether a ticket's answer at a tier below the reference is sampled for shadow evaluation: a hash
// of (tenant, ticket, revision, tier) against shadow.sample, so a redelivery decides the same.
bool sampledForShadow(const ShadowConfig& shadow, const RoutedTicket& ticket, const std::string& tier);

// The ledger acknowledgements a ticket's finished calls still wait for. The ticket is handed on
// only once every settle of its calls is acknowledged (an unsettled reservation would expire and
// leave its spend unaccounted), but no call thread waits for them: it takes the next ticket while
// the batcher's round trip is out, and the last acknowledgement hands the ticket on. Thread-safe.
class PendingSettles {
 public:
  void add();
  // One acknowledged, or given up on after its retries.
  void settled();
  // Runs `then` once nothing is pending: at once on this thread if nothing is, else on the thread
  // that acknowledges the last settle. Call it once.
  void whenSettled(std::function<void()> then);
  // Blocks until nothing is pending.
  void wait();

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int pending_ = 0;
  std::function<void()> then_;
};

// Cluster-wide admission of each call; a null member is not enforced (unit tests, benchmarks).
struct CallAdmission {
  redis::RateLimiter* limiter = nullptr;
  redis::BudgetLedger* ledger = nullptr;
  std::chrono::milliseconds max_rate_wait{30000};  // longest one call waits for a rate-limit grant
  // Both send through it: the grant and the reservation (and the lease's release and the
  // settle) then share one round trip, with whatever other calls of the process are admitting
  // or finishing at the same moment. Null: one round trip each.
  redis::CommandBatcher* batcher = nullptr;
  // Runs a settle's retries (they wait between tries) on a thread that may wait, never the
  // batcher's. With a batcher and this, no call thread waits for its settle (PendingSettles);
  // without it, each call waits for its settle's round trip.
  std::function<void(std::function<void()>)> offload;
  // How long this process's claim on a reservation holds without renewal (ReservationLeases
  // renews it while the call is in flight): after a crash, how long the ticket's next process
  // waits before it sends the call itself.
  std::chrono::milliseconds owner_lease{10000};
};

// kFailed: no answer this time (every model down, or the budget ledger unreachable); `failure`
// is the retriable error for the engine, and spent_micro_usd what the attempt still cost.
enum class TierOutcomeKind { kAnswered, kEscalate, kBudgetRefused, kFailed };

struct TierOutcome {
  TierOutcomeKind kind = TierOutcomeKind::kAnswered;
  // kAnswered; cost includes what earlier tiers spent on the ticket. kEscalate by the verifier:
  // only `answer` and `model`, the answer judged.
  TicketResult result;
  std::string next_tier;   // kEscalate
  std::string escalation;  // kEscalate: a RouteMove reason (low_confidence, verifier, quality_floor, unusable_answer)
  std::string reason;      // why it escalated or was refused, or why the answer is degraded
  int calls = 0;           // model calls made
  MicroUsd spent_micro_usd = 0;                           // spent on calls by this tier, including unusable replies
  BudgetPolicy budget_policy = BudgetPolicy::kDowngrade;  // kBudgetRefused
  std::string exhausted_bucket;                           // kBudgetRefused: e.g. "tenant:acme:day:2026-11-22"
  bool reservations_in_the_way = false;                   // kBudgetRefused: only calls in flight filled the cap
  std::optional<Error> failure;                           // kFailed
  // What the ticket's calls still owe the ledger (decide()); hand the ticket on only once it is
  // settled. Never null.
  std::shared_ptr<PendingSettles> settles;
  // kAnswered: worth reusing for a near-duplicate (not degraded, not handed to humans for low
  // confidence). A confident "needs a human for approval" answer is reusable.
  bool cacheable = false;
  // kAnswered and kEscalate after an answer: what the escalation verifier saw, and its estimate
  // (nullopt: the tier does not use it).
  classify::AnswerFeatures features;
  std::optional<double> agreement;
  bool repaired = false;  // a reply needed a repair round
};

// The first call's admission (rate-limit grant and budget reservation), asked for before a call
// thread takes the ticket (admitEarly): its round trip then holds no thread, and the thread that
// takes the ticket starts with the answer at hand instead of waiting for it. The first chain
// model's breaker is consulted when it is asked for, not again when the call starts.
struct EarlyAdmission {
  provider::ModelRequest request;  // the first model's, built once
  std::int64_t prompt_tokens = 0;
  redis::BudgetLedger::PreparedReserve prepared;
  std::string owner;  // of the reservation (CallContext::owner)
  std::string lease;
  Result<std::vector<redis::Reply>> replies = Error::internal("not answered");  // grant's, reservation's
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

// Holds the verifier's escalations from a tier to at most `share` of the answers it judges:
// tracks the verifier score below which that share of answers fall (a stochastic quantile,
// Robbins-Monro) and lets an answer go up only below it, so the most doubtful go first and the
// tier above gets a predictable load. In memory, per process (each process holds the share of its
// own answers); it starts from the configured threshold. Thread-safe.
class EscalationShare {
 public:
  EscalationShare(double share, double start) : share_(share), threshold_(start) {}
  // Whether an answer with verifier estimate `score` may go up (and learns from it).
  bool admit(double score);
  double threshold() const;

 private:
  static constexpr double kStep = 0.01;
  const double share_;
  mutable std::mutex mutex_;
  double threshold_;
};

class TierService {
 public:
  // Throws std::invalid_argument if `tier` is not configured.
  TierService(const Config& config, const std::string& tier, ModelClientFactory factory, const Clock& clock,
              Sleeper sleeper, provider::PromptSet prompts, TierPolicy policy = {}, CallAdmission admission = {},
              observability::PipelineMetrics* metrics = nullptr);

  // `delivery_attempt` is the stage's attempt number (budget reservations are keyed by it).
  // When no model of the chain could answer for transient reasons (the message lists what each
  // model said, retry_after_ms when breakers say how long) or the budget ledger is unreachable,
  // the outcome is kFailed with a retriable error. The Result's own error is for broken input.
  // Returns once every settle of the ticket's calls is acknowledged.
  Result<TierOutcome> handle(const RoutedTicket& ticket, int delivery_attempt = 1);
  // The same decision, returned as soon as it is made: outcome.settles says when the ledger has
  // every settle (the tier role hands the ticket on then).
  // `early`: from admitEarly() for the same ticket and attempt (null: admitted when the call starts).
  Result<TierOutcome> decide(const RoutedTicket& ticket, int delivery_attempt = 1,
                             std::shared_ptr<EarlyAdmission> early = nullptr);
  // Asks for the first call's admission and returns at once; `answered` runs on the batcher's
  // thread with the answered admission, to pass on to decide(). False, and `answered` never runs,
  // when there is nothing to ask early: no batcher, limiter and ledger, the reservation cannot be
  // prepared (decide() then reports why), or the first model's breaker is open.
  bool admitEarly(const RoutedTicket& ticket, int delivery_attempt,
                  std::function<void(std::shared_ptr<EarlyAdmission>)> answered);
  const std::string& name() const { return tier_.name; }
  // At shutdown: a settle still retrying (Redis down) gives up after its current try instead of
  // waiting out the outage, so the process can exit; its reservation expires with its TTL.
  void stopSettleRetries() { stopping_settles_ = true; }

  provider::BreakerState breakerState(const std::string& model_name);
  // Whether shadow evaluation measured this tier below shadow.quality_floor in the ticket's
  // category (and the ticket is not in the shadow sample): it goes up without a call.
  bool belowQualityFloor(const RoutedTicket& ticket) const;
  // The tier the thresholds in force (TierPolicy::route_thresholds) put the ticket on, when it is
  // not this one and the ticket was routed by difficulty alone and has not moved since.
  std::optional<std::string> shareTargetTier(const RoutedTicket& ticket) const;
  // What the escalation verifier sees of an answer to the ticket.
  static classify::AnswerFeatures answerFeatures(const RoutedTicket& ticket, const Answer& answer, bool repaired);

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
  // What one ticket's calls share: its budget key, and why the chain must stop early.
  struct CallContext {
    std::string budget_key;
    std::string tenant;
    // This handling of the ticket, as the owner of its reservations (ReservationLeases).
    std::string owner;
    // The next provider request's id within budget_key: every admission takes a new one
    // (fallbacks, retries, rate-limit waits, repairs), so one id is one request sent.
    int next_call = 1;
    // Set by admit() when the id was settled before (a redelivered ticket): its reply is
    // replayed instead of sending the request again.
    std::optional<redis::ReserveResult> replay;
    std::optional<Error> abort;                   // the ledger is unreachable: fail retriably
    std::optional<redis::ReserveResult> refused;  // a cap has no room
    std::shared_ptr<PendingSettles> settles = std::make_shared<PendingSettles>();
  };
  // One model, with retries; an unusable reply is repaired once. Errors mean "try the next",
  // unless the context says to stop.
  // `early`: the first attempt's admission, already answered.
  Result<provider::ModelReply> callWithRetries(Entry& entry, provider::ModelRequest request, TierOutcome& outcome,
                                               Answer& answer, CallContext& context, EarlyAdmission* early);
  // The rate-limit grant (the lease to give back, "" without a limiter) and the budget
  // reservation for call number `call`. An error means "try the next model", unless it set
  // context.abort (Redis unreachable) or context.refused (a cap without room).
  Result<std::string> admit(const ModelConfig& model, std::int64_t prompt_tokens, std::int64_t tokens, int call,
                            CallContext& context, EarlyAdmission* early = nullptr);
  std::string budgetKey(const RoutedTicket& ticket, int delivery_attempt) const;
  // After the call: the lease back, the reservation settled to the reply's cost (the reply kept
  // for a redelivery's replay) or released (no reply: nothing was spent).
  void finishCall(const ModelConfig& model, const std::string& lease, const CallContext& context, int call,
                  const provider::ModelReply* reply);
  // The reservation of `call` given back (nothing was spent) and no longer held.
  void releaseReservation(const CallContext& context, int call);
  void letGo(const std::string& budget_key, int call, const std::string& owner);
  void countSettle(const redis::SettleResult& settled);
  // The reservation of `call` is open in another process whose call is in flight: wait for it
  // (true: ask again), or give up after `deadline` (context.abort set).
  bool waitForOwner(const redis::ReserveResult& reserved, const ModelConfig& model,
                    std::chrono::steady_clock::time_point deadline, CallContext& context);
  // Waits for the rate limiter alone; the lease to release after the call.
  Result<std::string> admitRate(const ModelConfig& model, std::int64_t tokens);
  void observeLimits(const ModelConfig& model, const Result<provider::ModelReply>& reply);
  // Lets go of the reservation's lease once settled (or given up).
  void settleWithRetries(const std::string& budget_key, int call, MicroUsd cost, const std::string& reply,
                         const std::string& owner);
  void recordCall(const Entry& entry, const Result<provider::ModelReply>& reply,
                  std::chrono::steady_clock::duration took, bool usable);
  std::chrono::milliseconds nextDelay(int attempt, std::int64_t retry_after_ms);

  const Config& config_;
  const TierConfig& tier_;
  std::string next_tier_;                              // empty for the last tier
  std::unique_ptr<EscalationShare> escalation_share_;  // tiers[].max_escalation_share, when set
  const Clock& clock_;
  Sleeper sleeper_;
  provider::PromptSet prompts_;
  TierPolicy policy_;
  CallAdmission admission_;
  std::unique_ptr<redis::ReservationLeases> leases_;  // with a ledger
  observability::PipelineMetrics* metrics_;
  std::vector<Entry> chain_;
  std::atomic<bool> stopping_settles_{false};
  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace ticketflow::tier
