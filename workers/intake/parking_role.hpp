#pragma once
// Intake's parking stage: tickets a budget cap deferred (budgets.on_exhausted: defer) wait on
// kafka.topics.deferred, and go back to their tier's topic when they are due: their cap's period
// ended (the parked-until header), or an operator ran `ticketflow budget release [--tenant T]`
// after they were parked. A parked ticket stays in flight here, its offset uncommitted, so a
// crash, restart or rebalance parks it again and never loses it; tickets of other tenants are
// not held up behind it (each is checked on its own, every second). At most stage.max_in_flight
// tickets are parked per process; beyond that the topic keeps them until room frees up.
//
// What is parked, per tenant with the latest reason, is published to Redis every few seconds
// (`ticketflow budget show` sums it over processes) and as ticketflow_parked_tickets.
//
// Threading: the handler never blocks (it parks or answers at once); one checker thread answers
// parked tickets that become due; stop() answers the rest so the engine can stop at once.

#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/stage/stage.hpp"

namespace ticketflow::intake {

class ParkingRole {
 public:
  // `ledger`: the release marks and the published counts (null: only parked-until counts).
  ParkingRole(const Config& config, redis::BudgetLedger* ledger, const Clock& clock,
              observability::PipelineMetrics* metrics, observability::Logger* logger);
  ~ParkingRole();
  ParkingRole(const ParkingRole&) = delete;
  ParkingRole& operator=(const ParkingRole&) = delete;

  stage::Handler handler();
  // Answers every parked ticket as an outage of cause "budget" (the engine holds it, uses no
  // attempt, and leaves it uncommitted when it stops) and stops checking. Call when the stage
  // is asked to stop, so its drain does not wait for tickets that are not due.
  void stop();

 private:
  struct Parked {
    stage::Completion completion;
    RoutedTicket ticket;
    std::chrono::system_clock::time_point parked_at;
    std::chrono::system_clock::time_point until;
    std::string reason;
  };
  void checkLoop();
  // Sends the ticket back to its tier as a new visit, budget state "ok".
  void sendBack(Parked& parked);

  const Config& config_;
  redis::BudgetLedger* ledger_;
  const Clock& clock_;
  observability::PipelineMetrics* metrics_;
  observability::Logger* logger_;
  const std::string instance_;  // this process, for the published counts
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::list<Parked> parked_;
  std::thread checker_;
};

}  // namespace ticketflow::intake
