// The tier's admission of each model call (tier_service.hpp says what it promises): the
// cluster-wide rate-limit grant, the budget reservation and its owner lease, the settle to the
// billed cost (or the release), and the first call's admission asked for early. Redis is reached
// through redis::RateLimiter, redis::BudgetLedger and the CommandBatcher.
#include <algorithm>

#include "tier_service.hpp"

namespace ticketflow::tier {

void PendingSettles::add() {
  std::lock_guard lock(mutex_);
  ++pending_;
}

void PendingSettles::settled() {
  std::function<void()> then;
  {
    std::lock_guard lock(mutex_);
    if (--pending_ > 0) return;
    then.swap(then_);
  }
  idle_.notify_all();
  if (then) then();
}

void PendingSettles::whenSettled(std::function<void()> then) {
  {
    std::lock_guard lock(mutex_);
    if (pending_ > 0) {
      then_ = std::move(then);
      return;
    }
  }
  then();
}

void PendingSettles::wait() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return pending_ == 0; });
}

Result<std::string> TierService::admitRate(const ModelConfig& model, std::int64_t tokens) {
  if (!admission_.limiter) return std::string();
  const auto deadline = clock_.steadyNow() + admission_.max_rate_wait;
  auto redis_backoff = std::chrono::milliseconds(50);
  // Bounded by time, and by count in case the clock is a test's that does not move.
  for (int round = 0; round < 10'000; ++round) {
    auto decision = admission_.limiter->acquire(model, tokens);
    std::chrono::milliseconds wait;
    if (!decision) {  // fail closed: no grant without Redis
      wait = redis_backoff;
      redis_backoff = std::min(redis_backoff * 2, std::chrono::milliseconds(2000));
      if (metrics_) metrics_->rate_limit_waits.with({model.name, "limiter_unavailable"}).inc();
      if (clock_.steadyNow() + wait > deadline)
        return Error::unavailable(model.name + ": rate limiter unavailable: " + decision.error().message);
    } else if (decision->granted) {
      return decision->lease;
    } else {
      wait = decision->wait;
      if (metrics_) metrics_->rate_limit_waits.with({model.name, decision->reason}).inc();
      if (clock_.steadyNow() + wait > deadline)
        return Error::rateLimited(model.name + ": over its " + decision->reason + " limit (models[].limits)",
                                  wait.count());
    }
    sleeper_(std::max(wait, std::chrono::milliseconds(1)));
  }
  return Error::rateLimited(model.name + ": no rate-limit grant", -1);
}

void TierService::observeLimits(const ModelConfig& model, const Result<provider::ModelReply>& reply) {
  if (!admission_.limiter) return;
  redis::ProviderHints hints;
  if (!reply) {
    if (reply.error().code != ErrorCode::kRateLimited) return;
    hints.rate_limited = true;
    if (reply.error().retry_after_ms >= 0) hints.retry_after = std::chrono::milliseconds(reply.error().retry_after_ms);
  } else {
    const auto& h = reply->hints;
    if (!h.remaining_requests && !h.remaining_tokens) return;  // nothing to adapt to
    hints.limit_requests = h.limit_requests;
    hints.limit_tokens = h.limit_tokens;
    hints.remaining_requests = h.remaining_requests;
    hints.remaining_tokens = h.remaining_tokens;
    hints.reset_requests = h.reset_requests;
    hints.reset_tokens = h.reset_tokens;
    hints.retry_after = h.retry_after;
  }
  (void)admission_.limiter->observe(model, hints);  // advisory: a Redis hiccup only delays adapting
}

void TierService::letGo(const std::string& budget_key, int call, const std::string& owner) {
  if (leases_) leases_->drop(budget_key, call, owner);
}

void TierService::releaseReservation(const CallContext& context, int call) {
  if (!admission_.ledger) return;
  (void)admission_.ledger->release(context.budget_key, call, context.owner);  // a failed one expires with its TTL
  letGo(context.budget_key, call, context.owner);
}

void TierService::countSettle(const redis::SettleResult& settled) {
  // A call this process sent after another took its reservation over (this one looked dead):
  // the provider billed both, and both are charged.
  if (settled.overtaken && metrics_) metrics_->tier_outcomes.with({tier_.name, "call_overtaken"}).inc();
}

void TierService::settleWithRetries(const std::string& budget_key, int call, MicroUsd cost, const std::string& reply,
                                    const std::string& owner) {
  if (!admission_.ledger) return;
  // The call happened and was paid: its cost must reach the ledger, so a Redis outage is waited
  // out (an expired reservation is still settled). Bounded so a stop cannot hang on it forever.
  const auto give_up_at =
      clock_.steadyNow() + std::chrono::seconds(std::max<std::int64_t>(config_.budgets.reservation_ttl_s, 600));
  auto delay = std::chrono::milliseconds(50);
  for (int tries = 0; tries < 100'000; ++tries) {
    auto settled = admission_.ledger->settle(budget_key, call, cost, reply, owner);
    if (settled) countSettle(*settled);
    if (settled || !settled.error().retriable) break;
    if (clock_.steadyNow() >= give_up_at || stopping_settles_) {
      if (metrics_) metrics_->tier_outcomes.with({tier_.name, "settle_abandoned"}).inc();
      break;
    }
    sleeper_(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(2000));
  }
  letGo(budget_key, call, owner);
}

bool TierService::waitForOwner(const redis::ReserveResult& reserved, const ModelConfig& model,
                               std::chrono::steady_clock::time_point deadline, CallContext& context) {
  if (clock_.steadyNow() >= deadline) {
    // Its owner is alive but slow: the ticket is tried again later under a new request id.
    context.abort = Error::unavailable("budget reservation " + context.budget_key +
                                       " is held by a call in flight in another process");
    return false;
  }
  if (metrics_) metrics_->rate_limit_waits.with({model.name, "call_in_flight_elsewhere"}).inc();
  // Settled any moment (then replayed) or taken over once the owner's lease lapses.
  sleeper_(std::clamp(reserved.owner_lease_left, std::chrono::milliseconds(20), std::chrono::milliseconds(250)));
  return true;
}

Result<std::string> TierService::admit(const ModelConfig& model, std::int64_t prompt_tokens, std::int64_t tokens,
                                       int call, CallContext& context, EarlyAdmission* early) {
  redis::BudgetLedger* ledger = admission_.ledger;
  redis::RateLimiter* limiter = admission_.limiter;
  const redis::BudgetRequest request{context.budget_key,
                                     call,
                                     context.tenant,
                                     tier_.name,
                                     redis::estimateCallCost(model, prompt_tokens),
                                     context.owner,
                                     admission_.owner_lease};
  // Another process may still be sending this id (the ticket moved here with a rebalance): wait
  // for its answer, bounded.
  const auto owner_wait_deadline = clock_.steadyNow() + admission_.max_rate_wait + 2 * admission_.owner_lease;
  // A settled id is never sent again: it is replayed from its kept reply (callWithRetries). An
  // open one (a run cut short) goes ahead and is settled once.
  auto refusedBy = [](const redis::ReserveResult& r) { return !r.reserved && !r.replayed; };
  auto refuse = [&](const redis::ReserveResult& r) -> Error {
    context.refused = r;
    return Error{ErrorCode::kBudgetExhausted, "no room in budget " + r.exhausted_bucket, false, -1};
  };
  if (!ledger || !limiter || !admission_.batcher) {  // one of them, or no batcher: one by one
    auto lease = admitRate(model, tokens);
    if (!lease || !ledger) return lease;
    auto reserved = ledger->reserve(request);
    if (reserved && reserved->in_flight_elsewhere) {
      if (limiter) (void)limiter->release(model, *lease);  // no grant held while waiting
      for (int round = 0; round < 10'000 && reserved && reserved->in_flight_elsewhere; ++round) {
        if (!waitForOwner(*reserved, model, owner_wait_deadline, context)) break;
        reserved = ledger->reserve(request);
      }
      if (reserved && reserved->in_flight_elsewhere) {
        if (!context.abort)
          context.abort = Error::unavailable("budget reservation " + context.budget_key + " stays in flight");
        return *context.abort;
      }
      if (reserved && reserved->reserved) {  // taken over: this call is sent here, under a new grant
        lease = admitRate(model, tokens);
        if (!lease) {
          releaseReservation(context, call);
          return lease;
        }
      } else {
        lease = std::string();  // settled (replayed) or refused: nothing to give back
      }
    }
    if (reserved && reserved->state == redis::ReservationState::kSettled) {  // paid before: replay its reply
      if (limiter) (void)limiter->release(model, *lease);
      context.replay = *reserved;
      return std::string();
    }
    if (!reserved || refusedBy(*reserved)) {
      if (limiter) (void)limiter->release(model, *lease);
      if (!reserved) {
        context.abort = Error::unavailable("budget ledger: " + reserved.error().message);
        return *context.abort;
      }
      return refuse(*reserved);
    }
    if (leases_) leases_->hold(context.budget_key, call, context.owner);
    return lease;
  }
  // The rate-limit grant and the reservation in one round trip. While the limiter makes the call
  // wait, the reservation is kept (releasing and reserving again under the same key would replay
  // as released and leave the call uncharged).
  auto prepared = early ? Result<redis::BudgetLedger::PreparedReserve>(std::move(early->prepared))
                        : ledger->prepareReserve(request);
  if (!prepared) {
    context.abort = prepared.error();
    return *context.abort;
  }
  auto deadline = clock_.steadyNow() + admission_.max_rate_wait;
  bool reserved = false;
  for (int round = 0; round < 10'000; ++round) {
    std::string lease;
    Result<std::vector<redis::Reply>> replies = Error::internal("admission not asked");
    if (round == 0 && early) {  // answered before this thread took the ticket
      lease = std::move(early->lease);
      replies = std::move(early->replies);
    } else {
      std::vector<redis::RedisCall> calls = {limiter->acquireCall(model, tokens, lease)};
      if (!reserved) calls.push_back(prepared->call);
      replies = admission_.batcher->run(std::move(calls));
    }
    if (!replies) {  // fail closed: the engine retries the ticket later
      if (reserved) releaseReservation(context, call);
      context.abort = Error::unavailable("rate limiter and budget ledger: " + replies.error().message);
      return *context.abort;
    }
    auto decision = redis::RateLimiter::decodeAcquire((*replies)[0], lease);
    if (!reserved) {
      auto result = ledger->decodeReserve((*replies)[1], *prepared);
      if (result && result->in_flight_elsewhere) {
        if (decision && decision->granted) (void)limiter->release(model, decision->lease);
        const auto waited_from = clock_.steadyNow();
        if (!waitForOwner(*result, model, owner_wait_deadline, context)) return *context.abort;
        deadline += clock_.steadyNow() - waited_from;  // the rate-limit wait is its own
        prepared = ledger->prepareReserve(request);    // asked again at the time of asking
        if (!prepared) {
          context.abort = prepared.error();
          return *context.abort;
        }
        continue;
      }
      if (result &&
          result->state == redis::ReservationState::kSettled) {  // paid before: replay its reply, no grant needed
        if (decision && decision->granted) (void)limiter->release(model, decision->lease);
        context.replay = *result;
        return std::string();
      }
      if (!result || refusedBy(*result)) {
        if (decision && decision->granted) (void)limiter->release(model, decision->lease);
        if (!result) {
          context.abort = Error::unavailable("budget ledger: " + result.error().message);
          return *context.abort;
        }
        return refuse(*result);
      }
      reserved = true;
      if (leases_) leases_->hold(context.budget_key, call, context.owner);
    }
    if (!decision) {
      releaseReservation(context, call);
      context.abort = Error::unavailable("rate limiter: " + decision.error().message);
      return *context.abort;
    }
    if (decision->granted) return decision->lease;
    if (metrics_) metrics_->rate_limit_waits.with({model.name, decision->reason}).inc();
    if (clock_.steadyNow() + decision->wait > deadline) {
      releaseReservation(context, call);
      return Error::rateLimited(model.name + ": over its " + decision->reason + " limit (models[].limits)",
                                decision->wait.count());
    }
    sleeper_(std::max(decision->wait, std::chrono::milliseconds(1)));
  }
  if (reserved) releaseReservation(context, call);
  return Error::rateLimited(model.name + ": no rate-limit grant", -1);
}

void TierService::finishCall(const ModelConfig& model, const std::string& lease, const CallContext& context, int call,
                             const provider::ModelReply* reply) {
  redis::BudgetLedger* ledger = admission_.ledger;
  redis::RateLimiter* limiter = admission_.limiter;
  std::vector<redis::RedisCall> calls;
  if (limiter)
    if (auto release = limiter->releaseCall(model, lease)) calls.push_back(std::move(*release));
  const bool settles = ledger && reply;
  const MicroUsd cost = reply ? reply->cost_micro_usd : 0;
  const std::string stored = settles ? provider::toStoredReply(*reply, model.name) : std::string();
  if (ledger)
    calls.push_back(settles ? ledger->settleCall(context.budget_key, call, cost, stored, context.owner)
                            : ledger->releaseCall(context.budget_key, call, context.owner));
  if (calls.empty()) return;
  if (!admission_.batcher) {
    if (limiter) (void)limiter->release(model, lease);
    if (settles)
      settleWithRetries(context.budget_key, call, cost, stored, context.owner);
    else
      releaseReservation(context, call);
    return;
  }
  if (admission_.offload) {
    if (!settles) {
      admission_.batcher->submit(std::move(calls), {});  // a failed release expires with its TTL
      return letGo(context.budget_key, call, context.owner);
    }
    // The call thread goes on; the ticket waits for this acknowledgement (PendingSettles).
    context.settles->add();
    admission_.batcher->submit(
        std::move(calls), [this, settles = context.settles, key = context.budget_key, owner = context.owner, call, cost,
                           stored](Result<std::vector<redis::Reply>> replies) {
          if (replies) {
            auto settled = redis::BudgetLedger::decodeSettle(replies->back(), key, call);
            // kNotFound: a replay, already counted.
            if (settled || settled.error().code == ErrorCode::kNotFound) {
              if (settled) countSettle(*settled);
              letGo(key, call, owner);
              return settles->settled();
            }
          }
          // The call happened: its cost must reach the ledger, retried off the batcher's thread.
          admission_.offload([this, settles, key, owner, call, cost, stored] {
            settleWithRetries(key, call, cost, stored, owner);
            settles->settled();
          });
        });
    return;
  }
  auto replies = admission_.batcher->run(std::move(calls));
  if (!settles) return letGo(context.budget_key, call, context.owner);
  if (replies) {
    auto settled = redis::BudgetLedger::decodeSettle(replies->back(), context.budget_key, call);
    if (settled || settled.error().code == ErrorCode::kNotFound) {  // kNotFound: a replay, already counted
      if (settled) countSettle(*settled);
      return letGo(context.budget_key, call, context.owner);
    }
  }
  // The call happened: its cost must reach the ledger.
  settleWithRetries(context.budget_key, call, cost, stored, context.owner);
}

std::string TierService::budgetKey(const RoutedTicket& ticket, int delivery_attempt) const {
  return ticket.ticket.tenant + ":" + ticket.ticket.id + ":" + std::to_string(ticket.ticket.revision) + ":" +
         tier_.name + ":v" + std::to_string(ticket.tier_visits) + ":a" + std::to_string(delivery_attempt);
}

bool TierService::admitEarly(const RoutedTicket& ticket, int delivery_attempt,
                             std::function<void(std::shared_ptr<EarlyAdmission>)> answered) {
  // decide() sends these on without a call.
  if (shareTargetTier(ticket) || belowQualityFloor(ticket)) return false;
  if (!admission_.ledger || !admission_.limiter || !admission_.batcher || chain_.empty()) return false;
  Entry& entry = chain_.front();
  auto early = std::make_shared<EarlyAdmission>();
  early->request = provider::buildModelRequest(prompts_, ticket.ticket, ticket.classification.category, *entry.model);
  early->prompt_tokens = provider::estimatePromptTokens(early->request);
  early->owner = redis::ReservationLeases::newOwner();
  auto prepared = admission_.ledger->prepareReserve(
      {budgetKey(ticket, delivery_attempt), 1, ticket.ticket.tenant, tier_.name,
       redis::estimateCallCost(*entry.model, early->prompt_tokens), early->owner, admission_.owner_lease});
  // Asked last: a half-open breaker's probe, once granted, must lead to a call.
  if (!prepared || !entry.breaker->allow()) return false;
  early->prepared = std::move(*prepared);
  const std::int64_t tokens = early->prompt_tokens + early->request.max_output_tokens;
  std::vector<redis::RedisCall> calls = {admission_.limiter->acquireCall(*entry.model, tokens, early->lease),
                                         early->prepared.call};
  admission_.batcher->submit(
      std::move(calls), [early, answered = std::move(answered)](Result<std::vector<redis::Reply>> replies) mutable {
        early->replies = std::move(replies);
        answered(std::move(early));
      });
  return true;
}

}  // namespace ticketflow::tier
