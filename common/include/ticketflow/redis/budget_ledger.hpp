#pragma once
// BudgetLedger: spend caps per tenant, per tier and global, per UTC day and month, kept in Redis
// so every replica sees one ledger. A model call goes reserve -> call -> settle (or release on
// failure). Each step is one atomic Lua script.
//
// Invariant: for every capped bucket, settled + outstanding reservations <= cap, so the sum of
// settled charges never exceeds a cap. reserve() takes the estimated cost only if every
// applicable bucket has room; settle() replaces the reservation by the actual cost, but charges
// at most the bucket's room (its own reservation included). Reserving at the model's
// max_output_tokens makes actual <= reserved, so the clamp only bites when a provider bills
// more than it was asked for; the part not charged is recorded as `uncharged` in the audit
// stream and the bucket's `uncharged` field so an operator sees it. Reservations are keyed by
// request id (ticket, revision, tier, tier visit, delivery attempt, call number: one id per
// provider request actually sent): replaying settle or release changes nothing, and reserving
// an id that was settled returns its cost and the provider's reply (kept for
// budgets.reservation_ttl_s) so the caller replays the answer instead of sending the request
// again. An id still reserved (a run cut short, or its reply lost with Redis) is handed back
// reserved: the caller makes its call and settles it once. A released or expired id, and a
// refused one (nothing is recorded), is asked again as a new request.
// Owners: a reservation made with BudgetRequest::owner belongs to that owner (one handling of a
// ticket in one process) for an owner lease, which ReservationLeases renews while the call is in
// flight. Another owner asking for the id meanwhile (its partition moved to another process) is
// told to wait (ReserveResult::in_flight_elsewhere) and then replays the settled reply; once the
// lease lapses (the owner died) it takes the reservation over. A call its first owner still
// settles after a takeover was billed too, and is charged on its own (SettleResult::overtaken),
// so the ledger matches the provider's bill even then.
// A reservation not settled or released within budgets.reservation_ttl_s (its worker died)
// expires and its amount returns to the buckets. Every settle appends to the audit stream.
//
// Threading: thread-safe (the pool is). Errors: Redis unavailable -> retriable kUnavailable /
// kTimeout (fail closed: the caller waits and retries, nothing is spent unaccounted).

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

enum class BudgetPeriod { kDay, kMonth };

// Estimated cost of a call: the prompt plus the model's max_output_tokens, so the actual cost is
// never above the reservation.
MicroUsd estimateCallCost(const ModelConfig& model, std::int64_t prompt_tokens);

struct BudgetRequest {
  std::string ticket_id;
  int attempt = 1;
  std::string tenant;
  std::string tier;
  MicroUsd estimated_micro_usd = 0;
  // Who sends the call ("" = nobody in particular: any caller may take an open reservation), and
  // how long its claim holds without renewal.
  std::string owner = {};
  std::chrono::milliseconds owner_lease{0};
};

// What reserve() found for a request id.
enum class ReservationState {
  kReserved,  // reserved for this request (now, or open from a run cut short)
  kRefused,   // no room now
  kSettled,   // sent and paid before: replay it
  kInFlight,  // open, and another caller's claim on it still holds
};

struct ReserveResult {
  bool reserved = false;  // reserved for this request (now, or open from a run cut short)
  bool replayed = false;  // the id was used before: settled (replay it) or still reserved
  ReservationState state = ReservationState::kRefused;
  MicroUsd amount = 0;           // reserved amount (of the first reserve when replayed)
  std::string exhausted_bucket;  // e.g. "tier:frontier:day:2026-11-22" when !reserved
  // Refused, but the settled spend alone leaves room: calls in flight hold the rest at their
  // worst case and will most likely settle below it. Worth waiting for before applying `policy`.
  bool reservations_in_the_way = false;
  BudgetPolicy policy = BudgetPolicy::kDowngrade;
  // state "settled": the request was sent and paid before (a redelivered ticket). Its billed
  // cost, and the provider's reply kept by settle() ("" once it expired): replay it, never ask
  // the provider again under this id.
  MicroUsd settled_actual = 0;
  std::string settled_reply;
  // Open, and its owner's lease still runs: the call is in flight elsewhere. Ask again within
  // `owner_lease_left` (settled by then: replay it; lease lapsed: take it over).
  bool in_flight_elsewhere = false;
  std::chrono::milliseconds owner_lease_left{0};
};

struct SettleResult {
  MicroUsd charged = 0;
  MicroUsd uncharged = 0;  // actual above the room left (see the invariant above)
  bool replayed = false;
  bool overtaken = false;  // the id was taken over meanwhile: this call was charged on its own
};

// One line of `budget show`.
struct BucketSpend {
  std::string scope;      // global, tenant or tier
  std::string name;       // tenant or tier name; "" for global
  std::string period;     // day or month
  std::string period_id;  // 2026-11-22 or 2026-11
  MicroUsd settled = 0;
  MicroUsd reserved = 0;
  MicroUsd uncharged = 0;
  std::optional<MicroUsd> cap;
};

class BudgetLedger {
 public:
  // `config` gives the default caps, the policy and the reservation TTL; caps set with setCap()
  // live in Redis and override the configured ones. Keys start with redis.key_prefix + "budget:".
  BudgetLedger(std::shared_ptr<RedisPool> pool, const BudgetsConfig& config, std::string key_prefix,
               const Clock& clock = SystemClock::instance());

  Result<ReserveResult> reserve(const BudgetRequest& request);
  // Replaces the reservation of ticket+attempt with `actual`. kNotFound if it was never reserved
  // or was released; a reservation that expired is still settled (the call did happen).
  // `reply`: the provider's reply, kept for budgets.reservation_ttl_s for reserve()'s replay.
  // `owner`: the reservation's (BudgetRequest::owner).
  Result<SettleResult> settle(const std::string& ticket_id, int attempt, MicroUsd actual_micro_usd,
                              std::string reply = {}, const std::string& owner = {});
  // kNotFound also for an attempt that was refused.
  // Gives the reservation back (the call failed before spending). Idempotent; nothing for an
  // owner whose reservation was taken over.
  Status release(const std::string& ticket_id, int attempt, const std::string& owner = {});
  // Extends the owner lease of each (ticket id, attempt, owner) still reserved by that owner.
  struct HeldReservation {
    std::string ticket_id;
    int attempt = 1;
    std::string owner;
  };
  Result<int> renewOwners(const std::vector<HeldReservation>& held, std::chrono::milliseconds lease);

  // Cap overrides kept in Redis. `name` is the tenant or tier ("" for global); nullopt removes
  // the cap for that bucket (no cap), resetCap() returns to the configured value.
  Status setCap(BudgetScope scope, const std::string& name, BudgetPeriod period, std::optional<MicroUsd> cap);
  Status resetCap(BudgetScope scope, const std::string& name, BudgetPeriod period);
  // Zeroes the spend of the current period's buckets (all scopes when `scope` is empty).
  Status resetSpend(std::optional<BudgetScope> scope, const std::string& name, BudgetPeriod period);
  // Whether every cap on (tenant, tier) has room for `amount` now: a read for routing decisions
  // (intake), not a reservation; reserve() stays the check that holds under concurrency.
  Result<bool> hasRoom(const std::string& tenant, const std::string& tier, MicroUsd amount) const;
  // Spend and caps for the current day and month: every bucket with activity plus every cap.
  Result<std::vector<BucketSpend>> show();

  std::string auditStreamKey() const { return prefix_ + "audit"; }

  // ---- parked tickets (budgets.on_exhausted: defer) ----------------------------------------
  // When the period of `bucket_label` ("tenant:acme:day:2026-11-22") ends: a ticket deferred by
  // it is due again then. nullopt for a label that names no period.
  static std::optional<std::chrono::system_clock::time_point> periodEnd(const std::string& bucket_label);
  // `ticketflow budget release`: tickets of `tenant` (every tenant when nullopt) parked before
  // now are due at once.
  Status releaseParked(const std::optional<std::string>& tenant);
  // The releases: tenant ("*" for every tenant) -> when, in ms since the epoch.
  Result<std::map<std::string, std::int64_t>> parkedReleases() const;
  // What one parking process holds now, per tenant (count and the latest reason), kept for
  // `ttl` so a process that died stops counting.
  struct ParkedTenant {
    std::int64_t tickets = 0;
    std::string reason;
  };
  Status publishParked(const std::string& instance, const std::map<std::string, ParkedTenant>& parked,
                       std::chrono::seconds ttl) const;
  // Summed over every parking process.
  Result<std::map<std::string, ParkedTenant>> parked() const;
  // "" when the ledger's Redis keeps an append-only file; else what a restart would lose (the
  // spend and reservations since the last snapshot, or all of them): caps would open early and
  // a redelivered ticket's paid requests would be sent and charged again.
  Result<std::string> persistenceWarning() const;

  // The same work as calls for RedisPool::run, to share a round trip with other components'.
  struct PreparedReserve {
    RedisCall call;
    std::vector<std::string> bucket_labels;  // to name an exhausted bucket
  };
  Result<PreparedReserve> prepareReserve(const BudgetRequest& request) const;
  Result<ReserveResult> decodeReserve(const Reply& reply, const PreparedReserve& prepared) const;
  RedisCall settleCall(const std::string& ticket_id, int attempt, MicroUsd actual_micro_usd, std::string reply = {},
                       const std::string& owner = {}) const;
  static Result<SettleResult> decodeSettle(const Reply& reply, const std::string& ticket_id, int attempt);
  RedisCall releaseCall(const std::string& ticket_id, int attempt, const std::string& owner = {}) const;

 private:
  struct Bucket {
    std::string key;    // spend hash
    std::string field;  // cap field: scope:name:period
    std::string label;  // scope:name:period:period_id
    std::optional<MicroUsd> configured_cap;
    std::int64_t ttl_s = 0;
  };
  std::vector<Bucket> bucketsFor(const std::string& tenant, const std::string& tier) const;
  std::optional<MicroUsd> configuredCap(BudgetScope scope, const std::string& name, BudgetPeriod period) const;
  std::string reservationKey(const std::string& ticket_id, int attempt) const;

  std::shared_ptr<RedisPool> pool_;
  BudgetsConfig config_;
  std::string prefix_;
  const Clock& clock_;
};

const char* budgetScopeName(BudgetScope scope);
const char* budgetPeriodName(BudgetPeriod period);

}  // namespace ticketflow::redis
