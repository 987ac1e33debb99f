#pragma once
// ReservationLeases: keeps this process's claim on its open budget reservations while their
// calls are in flight. Each reservation made with an owner holds an owner lease in the ledger
// (BudgetLedger); this renews the leases of the held ones every third of a lease, so another
// process handed the same ticket after a rebalance waits for the answer instead of sending the
// request again, and a process that died stops renewing and is taken over after one lease.
//
// Threading: thread-safe; one renewing thread, stopped by the destructor. Errors: a renewal
// that fails (Redis down) is retried on the next beat; a lease that lapses meanwhile only lets
// another process send the call too, and both calls are charged (BudgetLedger::settle).

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

#include "ticketflow/redis/budget_ledger.hpp"

namespace ticketflow::redis {

class ReservationLeases {
 public:
  ReservationLeases(BudgetLedger& ledger, std::chrono::milliseconds lease);
  ~ReservationLeases();
  ReservationLeases(const ReservationLeases&) = delete;
  ReservationLeases& operator=(const ReservationLeases&) = delete;

  std::chrono::milliseconds lease() const { return lease_; }
  // A new owner id (random, unique across processes) for one handling of a ticket.
  static std::string newOwner();
  // From the moment the reservation is made until it is settled or released.
  void hold(const std::string& ticket_id, int attempt, const std::string& owner);
  void drop(const std::string& ticket_id, int attempt, const std::string& owner);
  std::size_t held() const;

 private:
  void renewLoop();

  BudgetLedger& ledger_;
  const std::chrono::milliseconds lease_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<std::tuple<std::string, int, std::string>, int> held_;  // -> holds (a call may be held twice)
  std::thread thread_;                                             // last: started when everything above exists
};

}  // namespace ticketflow::redis
