#include "ticketflow/redis/reservation_leases.hpp"

#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/thread_name.hpp"

namespace ticketflow::redis {

ReservationLeases::ReservationLeases(BudgetLedger& ledger, std::chrono::milliseconds lease)
    : ledger_(ledger), lease_(lease), thread_([this] { renewLoop(); }) {}

ReservationLeases::~ReservationLeases() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::string ReservationLeases::newOwner() {
  return randomTraceId();
}

void ReservationLeases::hold(const std::string& ticket_id, int attempt, const std::string& owner) {
  std::lock_guard lock(mutex_);
  ++held_[{ticket_id, attempt, owner}];
}

void ReservationLeases::drop(const std::string& ticket_id, int attempt, const std::string& owner) {
  std::lock_guard lock(mutex_);
  auto it = held_.find({ticket_id, attempt, owner});
  if (it != held_.end() && --it->second <= 0) held_.erase(it);
}

std::size_t ReservationLeases::held() const {
  std::lock_guard lock(mutex_);
  return held_.size();
}

void ReservationLeases::renewLoop() {
  nameThisThread("tf-leases");
  const auto beat = std::max(lease_ / 3, std::chrono::milliseconds(10));
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, beat, [this] { return stopping_; });
    if (stopping_ || held_.empty()) continue;
    std::vector<BudgetLedger::HeldReservation> held;
    held.reserve(held_.size());
    for (const auto& [key, holds] : held_) held.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key)});
    lock.unlock();
    (void)ledger_.renewOwners(held, lease_);  // a failure is retried on the next beat
    lock.lock();
  }
}

}  // namespace ticketflow::redis
