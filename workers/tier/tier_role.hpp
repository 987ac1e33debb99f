#pragma once
// The tier pool role on the stage engine: consumes <tier_prefix><tier>, runs the TierService on
// a bounded pool of call threads (model calls block on HTTP; the pool is sized by the tier's
// model concurrency so hundreds of calls are in flight without a thread per message beyond that
// bound; the first call's admission is asked for before a thread takes the ticket), and
// produces the result to the results topic, or the ticket to another tier's topic
// (escalated up, or sent down by a budget cap). An answer below the reference tier that shadow
// evaluation samples also goes to the shadow topic, in the same acknowledged batch. Malformed input is dead-lettered at
// once by the engine. A good answer is stored in the semantic cache so that a near-duplicate ticket of the same tenant
// is answered by intake without a call.
//
// A budget cap without room applies budgets.on_exhausted: downgrade (the next cheaper tier;
// on the cheapest tier, defer), defer (the ticket is parked on kafka.topics.deferred until the
// cap's period ends or an operator releases it; intake's ParkingRole sends it back), or human (a
// result with needs_human and no call). Redis down, or every model of the chain down, are
// outages: the engine holds the ticket, using no attempt, until they are back.

#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/redis/feedback_store.hpp"
#include "ticketflow/redis/in_flight.hpp"
#include "ticketflow/redis/route_shares.hpp"
#include "ticketflow/redis/semantic_cache.hpp"
#include "ticketflow/stage/stage.hpp"
#include "tier_service.hpp"

namespace ticketflow::tier {

// The engine's completion, answered once the ledger has every settle of the ticket's calls
// (PendingSettles): on this thread if it already has, else on the one that acknowledges the last.
class SettledCompletion {
 public:
  // `after_ack`: run once the outputs of a success are acknowledged (Completion::succeed).
  SettledCompletion(stage::Completion completion, std::shared_ptr<PendingSettles> settles,
                    std::function<void()> after_ack = {});
  void succeed(std::vector<stage::OutputRecord> outputs) const;
  void fail(Error error) const;

 private:
  stage::Completion completion_;
  std::shared_ptr<PendingSettles> settles_;
  std::function<void()> after_ack_;
};

class TierRole {
 public:
  // `cache`, `metrics` and `logger` may be null (not used).
  TierRole(const Config& config, TierService& service, int call_threads, const Clock& clock = SystemClock::instance(),
           redis::SemanticCache* cache = nullptr, observability::PipelineMetrics* metrics = nullptr,
           observability::Logger* logger = nullptr, redis::InFlightRegistry* in_flight = nullptr,
           redis::AgreementStore* agreement = nullptr, redis::RouteShareLoop* route_shares = nullptr,
           redis::FeedbackStore* feedback = nullptr);
  ~TierRole();
  TierRole(const TierRole&) = delete;
  TierRole& operator=(const TierRole&) = delete;
  stage::Handler handler();
  // Starts no more tickets and waits for every ticket that has a turn to finish (including one
  // whose early admission is still out). After the stage has stopped and before the batcher goes:
  // those tickets' round trips go through it.
  void stop();

 private:
  // A delivery, its completion and its routed ticket, parsed on the poll thread.
  struct TicketInHand {
    std::shared_ptr<const stage::Delivery> delivery;
    stage::Completion completion;
    RoutedTicket routed;
  };
  // With a turn: asks for the first call's admission; its answer queues the call.
  void admit(const std::shared_ptr<TicketInHand>& ticket);
  void queueCall(const std::shared_ptr<TicketInHand>& ticket, std::shared_ptr<EarlyAdmission> early);
  // `routed`: the delivery's, parsed; `early`: its first call's admission, answered (or null).
  void handle(const stage::Delivery& delivery, const stage::Completion& completion, RoutedTicket& routed,
              std::shared_ptr<EarlyAdmission> early);
  // A ticket takes a turn before its first admission is asked for and gives it back when its
  // call thread is done with it. Turns are as many as call threads, so a ticket that holds a
  // rate-limit lease never waits for a thread, which a ticket waiting for a lease could hold.
  // `start` never throws: it answers the ticket's completion itself.
  void takeTurn(const std::function<void()>& start);
  void giveTurnBack();
  void applyBudgetPolicy(const RoutedTicket& routed, const TierOutcome& outcome, const SettledCompletion& completion);
  void count(const std::string& outcome);
  // The shadow request for a sampled answer of this tier (none at or above the reference tier).
  std::optional<stage::OutputRecord> shadowRequest(const RoutedTicket& routed, const TierOutcome& outcome,
                                                   bool escalated);
  // What earlier failed runs of a message spent (unusable replies are billed too), so its final
  // result carries the ticket's whole cost. A run held for an outage is repeated with the same
  // attempt and replays what it paid for, so only an attempt's latest run counts, and the final
  // run adds the other attempts'. In memory: a crash loses it with the run. Bounded: past
  // kMaxCarried messages the oldest is dropped, counted (carried_cost_dropped) and logged.
  // What the other attempts of the message spent (nullopt: no earlier run failed); forgotten
  // (forgetCarried) only once the message's outputs are acknowledged, since a failed produce runs
  // the same attempt again.
  std::optional<MicroUsd> carriedFor(const std::string& key, int attempt);
  void forgetCarried(const std::string& key);
  void carry(const std::string& key, int attempt, MicroUsd spent);
  static constexpr std::size_t kMaxCarried = 100'000;

  const Config& config_;
  TierService& service_;
  const Clock& clock_;
  redis::SemanticCache* cache_;
  redis::InFlightRegistry* in_flight_;   // ends a ticket's registration once it has its final answer
  redis::AgreementStore* agreement_;     // counts final answers per tier x category (shadow weights)
  redis::RouteShareLoop* route_shares_;  // counts final answers for routing.targets
  redis::FeedbackStore* feedback_;       // remembers final answers for the helpdesk's feedback
  observability::PipelineMetrics* metrics_;
  observability::Logger* logger_;
  std::mutex carried_mutex_;
  struct Carried {
    std::map<int, MicroUsd> by_attempt;  // the latest failed run's spend of each attempt
    std::list<std::string>::iterator age;
  };
  std::map<std::string, Carried> carried_;
  std::list<std::string> carried_age_;  // oldest first
  std::mutex turns_mutex_;
  const int turns_;
  int free_turns_;
  bool stopping_ = false;
  std::condition_variable all_turns_back_;
  std::deque<std::function<void()>> waiting_for_turn_;  // tickets parsed, waiting for a turn
  WorkerPool calls_;
  // The final answers' counts (shadow weights, routing.targets) go to Redis from here, off the
  // thread that hands the ticket on (often the batcher's): best effort, at most kMaxCounts queued.
  void countAnswer(const std::string& tier, const std::string& category, const Route& route);
  void rememberAnswer(const RoutedTicket& routed, const TicketResult& result, const TierOutcome& outcome);
  // Runs `task` on counts_ unless kMaxCounts are already queued.
  void bookkeep(std::function<void()> task);
  static constexpr int kMaxCounts = 10'000;
  std::atomic<int> counts_queued_{0};
  WorkerPool counts_{1, "tf-count"};
};

// The call threads a tier needs: the largest max_concurrency of its models (64 when unset),
// capped at 512.
int callThreadsFor(const Config& config, const std::string& tier);

}  // namespace ticketflow::tier
