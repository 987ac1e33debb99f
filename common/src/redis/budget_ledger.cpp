#include "ticketflow/redis/budget_ledger.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>

#include "ticketflow/redis/client.hpp"

namespace ticketflow::redis {
namespace {

// Every script first expires reservations whose worker died, so their amount returns to the
// buckets before anyone checks room. Keys other than KEYS[] (reservation records, buckets named
// in them) are touched too: the ledger needs a single Redis (or one hash slot), not a cluster.
constexpr const char* kPurgeLua = R"lua(
local function purge(zkey, now)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, 200)
  for _, rk in ipairs(expired) do
    local st = redis.call('HMGET', rk, 'state', 'amount', 'spec')
    if st[1] == 'reserved' then
      local amt = tonumber(st[2])
      for b in string.gmatch(st[3], '([^\t\n]*)\t[^\t\n]*\t[^\n]*') do
        redis.call('HINCRBY', b, 'reserved', -amt)
      end
      redis.call('HSET', rk, 'state', 'expired')
    end
    redis.call('ZREM', zkey, rk)
  end
end
local function capOf(capsKey, field, configured)
  local c = redis.call('HGET', capsKey, field)
  if c == false then c = configured end
  if c == '' or c == 'none' then return nil end
  return tonumber(c)
end
)lua";

// KEYS: reservation, expiry zset, caps hash, bucket...  ARGV: amount, now_ms, expires_ms,
// record_ttl_s, tenant, tier, owner ('' = none), owner lease ms, then per bucket: cap field,
// configured cap ('' = none), bucket ttl.
// Returns {1, amount} reserved; {0, bucket index, 1 when only outstanding reservations stand in
// the way (they may settle below their estimate) else 0} no room (nothing is recorded: the id
// stays free, and asking again checks the room again); {2, amount, 'settled', 0, actual, reply}
// a replay of a settled request (its stored reply, '' once that expired); {2, amount, 'reserved',
// 0} an open reservation whose owner's lease lapsed (a run cut short, or whose reply was lost with
// Redis): the caller takes it over, makes the call under it and settles it once, so it does not
// sit on the cap until its TTL; {3, amount, ms} an open reservation whose owner still holds its
// lease (its call is in flight in another process): wait for its settle and replay it. A
// released or expired id is reserved again as a new request.
const std::string kReserveLua = std::string(kPurgeLua) + R"lua(
local now = tonumber(ARGV[2])
purge(KEYS[2], now)
local existing = redis.call('HMGET', KEYS[1], 'state', 'amount', 'charged', 'uncharged', 'owner', 'owner_until')
if existing[1] == 'settled' then
  local actual = (tonumber(existing[3]) or 0) + (tonumber(existing[4]) or 0)
  return {2, tonumber(existing[2]), 'settled', 0, actual, redis.call('GET', KEYS[1] .. ':reply') or ''}
end
local owner = ARGV[7]
local owner_until = now + tonumber(ARGV[8])
if existing[1] == 'reserved' then
  local held_until = tonumber(existing[6]) or 0
  if owner ~= '' and existing[5] and existing[5] ~= '' and existing[5] ~= owner and held_until > now then
    return {3, tonumber(existing[2]), held_until - now}
  end
  if owner ~= '' then redis.call('HSET', KEYS[1], 'owner', owner, 'owner_until', owner_until) end
  return {2, tonumber(existing[2]), 'reserved', 0}
end
local amount = tonumber(ARGV[1])
local n = #KEYS - 3
for i = 1, n do
  local cap = capOf(KEYS[3], ARGV[8 + (i - 1) * 3 + 1], ARGV[8 + (i - 1) * 3 + 2])
  if cap then
    local v = redis.call('HMGET', KEYS[3 + i], 'settled', 'reserved')
    local settled = tonumber(v[1]) or 0
    if settled + (tonumber(v[2]) or 0) + amount > cap then
      local pending = 0
      if settled + amount <= cap then pending = 1 end
      return {0, i, pending}
    end
  end
end
local spec = {}
for i = 1, n do
  redis.call('HINCRBY', KEYS[3 + i], 'reserved', amount)
  redis.call('EXPIRE', KEYS[3 + i], ARGV[8 + (i - 1) * 3 + 3], 'NX')
  spec[i] = KEYS[3 + i] .. '\t' .. ARGV[8 + (i - 1) * 3 + 1] .. '\t' .. ARGV[8 + (i - 1) * 3 + 2]
end
redis.call('HSET', KEYS[1], 'state', 'reserved', 'amount', amount, 'spec', table.concat(spec, '\n'),
           'tenant', ARGV[5], 'tier', ARGV[6], 'reserved_at', now, 'owner', owner, 'owner_until', owner_until)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
return {1, amount}
)lua";

// KEYS: reservation, expiry zset, caps hash, audit stream.  ARGV: actual, now_ms, ticket,
// attempt, audit maxlen, the provider's reply to keep ('' for none), its TTL in seconds, owner
// ('' = none). Returns {1, charged, uncharged}, {2, charged, uncharged} replay, {3, charged,
// uncharged} a call its owner sent after another process took the id over (both requests were
// billed, so both are charged; the record stays the taker's), {-1} never reserved, {-2} released.
// The reply is kept beside the record so a redelivered ticket replays it instead of asking the
// provider again.
const std::string kSettleLua = std::string(kPurgeLua) + R"lua(
local now = tonumber(ARGV[2])
purge(KEYS[2], now)
local r = redis.call('HMGET', KEYS[1], 'state', 'amount', 'spec', 'charged', 'uncharged', 'tenant', 'tier', 'owner')
if not r[1] or r[1] == 'refused' then return {-1} end
local owner = ARGV[8]
local by = 'settled_by:' .. owner
if owner ~= '' then
  local earlier = redis.call('HGET', KEYS[1], by)
  if earlier then
    local cu = {}
    for v in string.gmatch(earlier, '[^:]+') do cu[#cu + 1] = tonumber(v) end
    return {2, cu[1], cu[2]}
  end
end
local taken_over = owner ~= '' and r[8] and r[8] ~= '' and r[8] ~= owner
if not taken_over then
  if r[1] == 'released' then return {-2} end
  if r[1] == 'settled' then return {2, tonumber(r[4]), tonumber(r[5])} end
end
local held = 0
if r[1] == 'reserved' and not taken_over then held = tonumber(r[2]) end
local actual = tonumber(ARGV[1])
local charge = actual
local buckets = {}
for b, field, conf in string.gmatch(r[3], '([^\t\n]*)\t([^\t\n]*)\t([^\n]*)') do
  buckets[#buckets + 1] = b
  local cap = capOf(KEYS[3], field, conf)
  if cap then
    local v = redis.call('HMGET', b, 'settled', 'reserved')
    local room = cap - (tonumber(v[1]) or 0) - ((tonumber(v[2]) or 0) - held)
    if room < charge then charge = room end
  end
end
if charge < 0 then charge = 0 end
local uncharged = actual - charge
for _, b in ipairs(buckets) do
  if held ~= 0 then redis.call('HINCRBY', b, 'reserved', -held) end
  redis.call('HINCRBY', b, 'settled', charge)
  if uncharged > 0 then redis.call('HINCRBY', b, 'uncharged', uncharged) end
end
if owner ~= '' then redis.call('HSET', KEYS[1], by, charge .. ':' .. uncharged) end
if taken_over then
  redis.call('HINCRBY', KEYS[1], 'overtaken_charged', charge)
else
  redis.call('HSET', KEYS[1], 'state', 'settled', 'charged', charge, 'uncharged', uncharged, 'settled_at', now)
  if ARGV[6] ~= '' then redis.call('SET', KEYS[1] .. ':reply', ARGV[6], 'EX', ARGV[7]) end
  redis.call('ZREM', KEYS[2], KEYS[1])
end
local overtaken = 0
if taken_over then overtaken = 1 end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'ticket', ARGV[3], 'attempt', ARGV[4],
           'tenant', r[6], 'tier', r[7], 'reserved', r[2], 'actual', actual, 'charged', charge,
           'uncharged', uncharged, 'overtaken', overtaken, 'at_ms', now)
if taken_over then return {3, charge, uncharged} end
return {1, charge, uncharged}
)lua";

// KEYS: reservation, expiry zset. ARGV: now_ms, owner ('' = none). Returns 1 released, 0 nothing
// to release (or the id was taken over: the reservation is the taker's to settle).
const std::string kReleaseLua = std::string(kPurgeLua) + R"lua(
purge(KEYS[2], tonumber(ARGV[1]))
local r = redis.call('HMGET', KEYS[1], 'state', 'amount', 'spec', 'owner')
if r[1] ~= 'reserved' and r[1] ~= 'expired' then return 0 end
if ARGV[2] ~= '' and r[4] and r[4] ~= '' and r[4] ~= ARGV[2] then return 0 end
if r[1] == 'reserved' then
  local amt = tonumber(r[2])
  for b in string.gmatch(r[3], '([^\t\n]*)\t[^\t\n]*\t[^\n]*') do
    redis.call('HINCRBY', b, 'reserved', -amt)
  end
end
redis.call('HSET', KEYS[1], 'state', 'released', 'released_at', ARGV[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return 1
)lua";

// KEYS: reservations.  ARGV: now_ms, lease ms, then the owner of each reservation. Extends the
// owner's lease of each one still reserved by that owner. Returns how many were extended.
const std::string kRenewLua = R"lua(
local now = tonumber(ARGV[1])
local renewed = 0
for i, key in ipairs(KEYS) do
  local r = redis.call('HMGET', key, 'state', 'owner')
  if r[1] == 'reserved' and r[2] == ARGV[2 + i] then
    redis.call('HSET', key, 'owner_until', now + tonumber(ARGV[2]))
    renewed = renewed + 1
  end
end
return renewed
)lua";

const std::string kPurgeOnlyLua = std::string(kPurgeLua) + R"lua(
purge(KEYS[1], tonumber(ARGV[1]))
return 1
)lua";

const RedisScript& reserveScript() {
  static const RedisScript s(kReserveLua);
  return s;
}
const RedisScript& settleScript() {
  static const RedisScript s(kSettleLua);
  return s;
}
const RedisScript& releaseScript() {
  static const RedisScript s(kReleaseLua);
  return s;
}
const RedisScript& purgeScript() {
  static const RedisScript s(kPurgeOnlyLua);
  return s;
}
const RedisScript& renewScript() {
  static const RedisScript s(kRenewLua);
  return s;
}

constexpr std::int64_t kDayBucketTtlS = 40LL * 86400;  // kept a while after the day for `show`
constexpr std::int64_t kMonthBucketTtlS = 400LL * 86400;
constexpr std::int64_t kRecordTtlS = 40LL * 86400;  // replays within this window are no-ops
constexpr int kAuditMaxLen = 1'000'000;

std::string periodId(std::chrono::system_clock::time_point t, BudgetPeriod period) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, period == BudgetPeriod::kDay ? "%Y-%m-%d" : "%Y-%m", &tm);
  return buf;
}

std::string scopeName(BudgetScope s) {
  return budgetScopeName(s);
}

std::string capField(BudgetScope scope, const std::string& name, BudgetPeriod period) {
  return scopeName(scope) + ":" + (scope == BudgetScope::kGlobal ? std::string("-") : name) + ":" +
         budgetPeriodName(period);
}

Error scriptError(const Reply& reply) {
  return Error::internal("budget ledger script: " + reply.str);
}

}  // namespace

const char* budgetScopeName(BudgetScope scope) {
  switch (scope) {
    case BudgetScope::kGlobal:
      return "global";
    case BudgetScope::kTenant:
      return "tenant";
    case BudgetScope::kTier:
      return "tier";
  }
  return "global";
}

const char* budgetPeriodName(BudgetPeriod period) {
  return period == BudgetPeriod::kDay ? "day" : "month";
}

MicroUsd estimateCallCost(const ModelConfig& model, std::int64_t prompt_tokens) {
  return model.costMicroUsd(prompt_tokens, model.max_output_tokens);
}

BudgetLedger::BudgetLedger(std::shared_ptr<RedisPool> pool, const BudgetsConfig& config, std::string key_prefix,
                           const Clock& clock)
    : pool_(std::move(pool)), config_(config), prefix_(std::move(key_prefix) + "budget:"), clock_(clock) {}

std::optional<MicroUsd> BudgetLedger::configuredCap(BudgetScope scope, const std::string& name,
                                                    BudgetPeriod period) const {
  for (const auto& cap : config_.caps) {
    if (cap.scope != scope) continue;
    if (scope == BudgetScope::kTenant && cap.tenant != name) continue;
    if (scope == BudgetScope::kTier && cap.tier != name) continue;
    return period == BudgetPeriod::kDay ? cap.daily_micro_usd : cap.monthly_micro_usd;
  }
  return std::nullopt;
}

std::vector<BudgetLedger::Bucket> BudgetLedger::bucketsFor(const std::string& tenant, const std::string& tier) const {
  const auto now = clock_.now();
  std::vector<Bucket> out;
  const std::pair<BudgetScope, std::string> scopes[] = {
      {BudgetScope::kGlobal, ""}, {BudgetScope::kTenant, tenant}, {BudgetScope::kTier, tier}};
  for (const auto& [scope, name] : scopes) {
    for (BudgetPeriod period : {BudgetPeriod::kDay, BudgetPeriod::kMonth}) {
      Bucket b;
      b.field = capField(scope, name, period);
      b.label = b.field + ":" + periodId(now, period);
      b.key = prefix_ + "spend:" + b.label;
      b.configured_cap = configuredCap(scope, name, period);
      b.ttl_s = period == BudgetPeriod::kDay ? kDayBucketTtlS : kMonthBucketTtlS;
      out.push_back(std::move(b));
    }
  }
  return out;
}

std::string BudgetLedger::reservationKey(const std::string& ticket_id, int attempt) const {
  return prefix_ + "resv:" + ticket_id + "#" + std::to_string(attempt);
}

Result<bool> BudgetLedger::hasRoom(const std::string& tenant, const std::string& tier, MicroUsd amount) const {
  const auto buckets = bucketsFor(tenant, tier);
  std::vector<std::vector<std::string>> commands;
  std::vector<std::string> caps = {"HMGET", prefix_ + "caps"};
  for (const auto& b : buckets) {
    caps.push_back(b.field);
    commands.push_back({"HMGET", b.key, "settled", "reserved"});
  }
  commands.push_back(std::move(caps));
  auto replies = pool_->pipeline(commands);
  if (!replies) return replies.error();
  const Reply& overrides = replies->back();
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    std::optional<MicroUsd> cap = buckets[i].configured_cap;
    if (overrides.type == Reply::Type::kArray && i < overrides.elements.size() && !overrides.elements[i].isNil()) {
      const std::string& v = overrides.elements[i].str;
      cap = (v.empty() || v == "none") ? std::nullopt : std::optional<MicroUsd>(std::stoll(v));
    }
    if (!cap) continue;
    const Reply& spend = (*replies)[i];
    MicroUsd used = 0;
    for (const auto& e : spend.elements)
      if (!e.isNil() && !e.str.empty()) used += std::stoll(e.str);
    if (used + amount > *cap) return false;
  }
  return true;
}

std::optional<std::chrono::system_clock::time_point> BudgetLedger::periodEnd(const std::string& bucket_label) {
  // scope:name:period:period_id, where the name may itself hold ':' (the period id never does).
  const auto last = bucket_label.rfind(':');
  if (last == std::string::npos || last == 0) return std::nullopt;
  const auto before = bucket_label.rfind(':', last - 1);
  if (before == std::string::npos) return std::nullopt;
  const std::string period = bucket_label.substr(before + 1, last - before - 1);
  const std::string id = bucket_label.substr(last + 1);
  std::tm tm{};
  if (period == "day") {
    if (std::sscanf(id.c_str(), "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3) return std::nullopt;
    tm.tm_mday += 1;
  } else if (period == "month") {
    if (std::sscanf(id.c_str(), "%4d-%2d", &tm.tm_year, &tm.tm_mon) != 2) return std::nullopt;
    tm.tm_mday = 1;
    tm.tm_mon += 1;
  } else {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm));  // timegm normalises the overflow
}

Status BudgetLedger::releaseParked(const std::optional<std::string>& tenant) {
  auto replies = pool_->run({RedisCall::command(
      {"HSET", prefix_ + "releases", tenant.value_or("*"), std::to_string(epochMillis(clock_.now()))})});
  if (!replies) return replies.error();
  if (replies->front().type == Reply::Type::kError) return scriptError(replies->front());
  return {};
}

Result<std::map<std::string, std::int64_t>> BudgetLedger::parkedReleases() const {
  auto replies = pool_->run({RedisCall::command({"HGETALL", prefix_ + "releases"})});
  if (!replies) return replies.error();
  std::map<std::string, std::int64_t> out;
  const auto& e = replies->front().elements;
  for (std::size_t i = 0; i + 1 < e.size(); i += 2) out[e[i].str] = std::strtoll(e[i + 1].str.c_str(), nullptr, 10);
  return out;
}

Status BudgetLedger::publishParked(const std::string& instance, const std::map<std::string, ParkedTenant>& parked,
                                   std::chrono::seconds ttl) const {
  const std::string key = prefix_ + "parked:" + instance;
  std::vector<RedisCall> calls = {RedisCall::command({"DEL", key})};
  if (!parked.empty()) {
    std::vector<std::string> hset = {"HSET", key};
    for (const auto& [tenant, p] : parked) {
      hset.push_back(tenant);
      hset.push_back(std::to_string(p.tickets) + "\t" + p.reason);
    }
    calls.push_back(RedisCall::command(std::move(hset)));
    calls.push_back(RedisCall::command({"EXPIRE", key, std::to_string(ttl.count())}));
  }
  auto replies = pool_->run(calls);
  if (!replies) return replies.error();
  return {};
}

Result<std::map<std::string, BudgetLedger::ParkedTenant>> BudgetLedger::parked() const {
  std::map<std::string, ParkedTenant> out;
  std::string cursor = "0";
  for (int round = 0; round < 10'000; ++round) {  // bounded: SCAN ends when the cursor is 0 again
    auto replies = pool_->run({RedisCall::command({"SCAN", cursor, "MATCH", prefix_ + "parked:*", "COUNT", "200"})});
    if (!replies) return replies.error();
    const Reply& page = replies->front();
    if (page.type != Reply::Type::kArray || page.elements.size() != 2) return scriptError(page);
    for (const auto& key : page.elements[1].elements) {
      auto fields = pool_->run({RedisCall::command({"HGETALL", key.str})});
      if (!fields) return fields.error();
      const auto& e = fields->front().elements;
      for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
        const std::string& value = e[i + 1].str;
        const auto tab = value.find('\t');
        ParkedTenant& p = out[e[i].str];
        p.tickets += std::strtoll(value.substr(0, tab).c_str(), nullptr, 10);
        if (tab != std::string::npos && p.reason.empty()) p.reason = value.substr(tab + 1);
      }
    }
    cursor = page.elements[0].str;
    if (cursor == "0") break;
  }
  return out;
}

Result<std::string> BudgetLedger::persistenceWarning() const {
  auto replies = pool_->run({RedisCall::command({"INFO", "persistence"})});
  if (!replies) return replies.error();
  const std::string& info = replies->front().str;
  if (infoField(info, "aof_enabled").value_or("0") == "1") return std::string();
  const bool snapshots = infoField(info, "rdb_last_save_time").value_or("0") != "0" &&
                         infoField(info, "rdb_changes_since_last_save").has_value();
  return std::string("the ledger's Redis keeps no append-only file (appendonly no): a restart loses ") +
         (snapshots ? "the spend and reservations since its last snapshot" : "every spend and reservation") +
         ", so caps open early and replies kept for redelivered tickets are gone. Set appendonly yes "
         "(docs/budget-ledger.md).";
}

Result<BudgetLedger::PreparedReserve> BudgetLedger::prepareReserve(const BudgetRequest& request) const {
  if (request.ticket_id.empty() || request.tenant.empty() || request.tier.empty())
    return Error::invalidArgument("budget reserve needs a ticket id, a tenant and a tier");
  if (request.estimated_micro_usd < 0) return Error::invalidArgument("budget reserve: negative estimate");
  const auto now = clock_.now();
  const auto buckets = bucketsFor(request.tenant, request.tier);
  std::vector<std::string> keys = {reservationKey(request.ticket_id, request.attempt), prefix_ + "resv_expiry",
                                   prefix_ + "caps"};
  std::vector<std::string> args = {std::to_string(request.estimated_micro_usd),
                                   std::to_string(epochMillis(now)),
                                   std::to_string(epochMillis(now) + config_.reservation_ttl_s * 1000LL),
                                   std::to_string(std::max<std::int64_t>(kRecordTtlS, config_.reservation_ttl_s * 2)),
                                   request.tenant,
                                   request.tier,
                                   request.owner,
                                   std::to_string(request.owner_lease.count())};
  PreparedReserve prepared;
  for (const auto& b : buckets) {
    keys.push_back(b.key);
    args.push_back(b.field);
    args.push_back(b.configured_cap ? std::to_string(*b.configured_cap) : "");
    args.push_back(std::to_string(b.ttl_s));
    prepared.bucket_labels.push_back(b.label);
  }
  prepared.call = RedisCall::eval(reserveScript(), keys, args);
  return prepared;
}

Result<ReserveResult> BudgetLedger::decodeReserve(const Reply& reply, const PreparedReserve& prepared) const {
  if (reply.type != Reply::Type::kArray || reply.elements.size() < 2) return scriptError(reply);
  const auto& labels = prepared.bucket_labels;
  ReserveResult out;
  out.policy = config_.on_exhausted;
  const auto code = reply.elements[0].integer;
  if (code == 1) {
    out.reserved = true;
    out.amount = reply.elements[1].integer;
    out.state = ReservationState::kReserved;
  } else if (code == 2 && reply.elements.size() >= 4) {
    out.replayed = true;
    out.amount = reply.elements[1].integer;
    const std::string& state = reply.elements[2].str;
    out.state = state == "settled" ? ReservationState::kSettled : ReservationState::kReserved;
    out.reserved = state == "reserved";
    if (out.state == ReservationState::kSettled && reply.elements.size() >= 6) {
      out.settled_actual = reply.elements[4].integer;
      out.settled_reply = reply.elements[5].str;
    }
  } else if (code == 3 && reply.elements.size() >= 3) {
    out.replayed = true;
    out.state = ReservationState::kInFlight;
    out.amount = reply.elements[1].integer;
    out.in_flight_elsewhere = true;
    out.owner_lease_left = std::chrono::milliseconds(reply.elements[2].integer);
  } else {
    out.state = ReservationState::kRefused;
    const auto index = static_cast<std::size_t>(reply.elements[1].integer - 1);
    out.exhausted_bucket = index < labels.size() ? labels[index] : "?";
    out.reservations_in_the_way = reply.elements.size() >= 3 && reply.elements[2].integer == 1;
  }
  return out;
}

Result<ReserveResult> BudgetLedger::reserve(const BudgetRequest& request) {
  auto prepared = prepareReserve(request);
  if (!prepared) return prepared.error();
  auto replies = pool_->run({prepared->call});
  if (!replies) return replies.error();
  return decodeReserve(replies->front(), *prepared);
}

RedisCall BudgetLedger::settleCall(const std::string& ticket_id, int attempt, MicroUsd actual_micro_usd,
                                   std::string reply, const std::string& owner) const {
  return RedisCall::eval(
      settleScript(), {reservationKey(ticket_id, attempt), prefix_ + "resv_expiry", prefix_ + "caps", auditStreamKey()},
      {std::to_string(actual_micro_usd), std::to_string(epochMillis(clock_.now())), ticket_id, std::to_string(attempt),
       std::to_string(kAuditMaxLen), std::move(reply),
       std::to_string(std::max<std::int64_t>(config_.reservation_ttl_s, 60)), owner});
}

Result<SettleResult> BudgetLedger::decodeSettle(const Reply& reply, const std::string& ticket_id, int attempt) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return scriptError(reply);
  const auto code = reply.elements[0].integer;
  if (code == -1)
    return Error{ErrorCode::kNotFound,
                 "budget settle: " + ticket_id + " attempt " + std::to_string(attempt) + " was never reserved", false};
  if (code == -2)
    return Error{ErrorCode::kNotFound,
                 "budget settle: " + ticket_id + " attempt " + std::to_string(attempt) + " was released", false};
  if (reply.elements.size() < 3) return scriptError(reply);
  return SettleResult{reply.elements[1].integer, reply.elements[2].integer, code == 2, code == 3};
}

Result<SettleResult> BudgetLedger::settle(const std::string& ticket_id, int attempt, MicroUsd actual_micro_usd,
                                          std::string reply, const std::string& owner) {
  if (actual_micro_usd < 0) return Error::invalidArgument("budget settle: negative cost");
  auto replies = pool_->run({settleCall(ticket_id, attempt, actual_micro_usd, std::move(reply), owner)});
  if (!replies) return replies.error();
  return decodeSettle(replies->front(), ticket_id, attempt);
}

RedisCall BudgetLedger::releaseCall(const std::string& ticket_id, int attempt, const std::string& owner) const {
  return RedisCall::eval(releaseScript(), {reservationKey(ticket_id, attempt), prefix_ + "resv_expiry"},
                         {std::to_string(epochMillis(clock_.now())), owner});
}

Status BudgetLedger::release(const std::string& ticket_id, int attempt, const std::string& owner) {
  auto replies = pool_->run({releaseCall(ticket_id, attempt, owner)});
  if (!replies) return replies.error();
  if (replies->front().type == Reply::Type::kError) return scriptError(replies->front());
  return {};
}

Result<int> BudgetLedger::renewOwners(const std::vector<HeldReservation>& held, std::chrono::milliseconds lease) {
  if (held.empty()) return 0;
  std::vector<std::string> keys;
  std::vector<std::string> args = {std::to_string(epochMillis(clock_.now())), std::to_string(lease.count())};
  for (const auto& h : held) {
    keys.push_back(reservationKey(h.ticket_id, h.attempt));
    args.push_back(h.owner);
  }
  auto replies = pool_->run({RedisCall::eval(renewScript(), keys, args)});
  if (!replies) return replies.error();
  if (replies->front().type != Reply::Type::kInteger) return scriptError(replies->front());
  return static_cast<int>(replies->front().integer);
}

Status BudgetLedger::setCap(BudgetScope scope, const std::string& name, BudgetPeriod period,
                            std::optional<MicroUsd> cap) {
  if (cap && *cap < 0) return Error::invalidArgument("a budget cap cannot be negative");
  auto reply =
      pool_->command({"HSET", prefix_ + "caps", capField(scope, name, period), cap ? std::to_string(*cap) : "none"});
  if (!reply) return reply.error();
  if (reply->type == Reply::Type::kError) return Error::unavailable("Redis: " + reply->str);
  return {};
}

Status BudgetLedger::resetCap(BudgetScope scope, const std::string& name, BudgetPeriod period) {
  auto reply = pool_->command({"HDEL", prefix_ + "caps", capField(scope, name, period)});
  if (!reply) return reply.error();
  return {};
}

Status BudgetLedger::resetSpend(std::optional<BudgetScope> scope, const std::string& name, BudgetPeriod period) {
  auto rows = show();
  if (!rows) return rows.error();
  const std::string current = periodId(clock_.now(), period);
  std::vector<std::vector<std::string>> commands;
  for (const auto& row : *rows) {
    if (row.period != budgetPeriodName(period) || row.period_id != current) continue;
    if (scope && (row.scope != budgetScopeName(*scope) || (*scope != BudgetScope::kGlobal && row.name != name)))
      continue;
    // Outstanding reservations stay: their settle or release will still adjust `reserved`.
    const std::string field =
        row.scope + ":" + (row.name.empty() ? "-" : row.name) + ":" + row.period + ":" + row.period_id;
    commands.push_back({"HDEL", prefix_ + "spend:" + field, "settled", "uncharged"});
  }
  if (commands.empty()) return {};
  auto replies = pool_->pipeline(commands);
  if (!replies) return replies.error();
  return {};
}

Result<std::vector<BucketSpend>> BudgetLedger::show() {
  const auto now = clock_.now();
  if (auto purged = pool_->eval(purgeScript(), {prefix_ + "resv_expiry"}, {std::to_string(epochMillis(now))}); !purged)
    return purged.error();
  const std::string day = periodId(now, BudgetPeriod::kDay), month = periodId(now, BudgetPeriod::kMonth);
  std::map<std::string, BucketSpend> rows;  // by label: sorted output
  auto rowFor = [&](const std::string& scope, const std::string& name, const std::string& period) -> BucketSpend& {
    const std::string id = period == "day" ? day : month;
    const std::string label = scope + ":" + (name.empty() ? "-" : name) + ":" + period + ":" + id;
    auto& row = rows[label];
    row.scope = scope;
    row.name = name;
    row.period = period;
    row.period_id = id;
    return row;
  };
  for (const auto& cap : config_.caps) {
    const std::string name = cap.scope == BudgetScope::kTenant ? cap.tenant : cap.tier;
    if (cap.daily_micro_usd) rowFor(budgetScopeName(cap.scope), name, "day").cap = cap.daily_micro_usd;
    if (cap.monthly_micro_usd) rowFor(budgetScopeName(cap.scope), name, "month").cap = cap.monthly_micro_usd;
  }
  auto caps = pool_->command({"HGETALL", prefix_ + "caps"});
  if (!caps) return caps.error();
  for (std::size_t i = 0; i + 1 < caps->elements.size(); i += 2) {
    const std::string& field = caps->elements[i].str;  // scope:name:period
    const auto a = field.find(':'), b = field.rfind(':');
    if (a == std::string::npos || b == a) continue;
    const std::string name = field.substr(a + 1, b - a - 1);
    auto& row = rowFor(field.substr(0, a), name == "-" ? "" : name, field.substr(b + 1));
    const std::string& value = caps->elements[i + 1].str;
    if (value == "none")
      row.cap.reset();
    else
      row.cap = std::stoll(value);
  }
  // Buckets with activity in the current periods.
  std::string cursor = "0";
  std::vector<std::string> keys;
  do {
    auto scan = pool_->command({"SCAN", cursor, "MATCH", prefix_ + "spend:*", "COUNT", "1000"});
    if (!scan) return scan.error();
    if (scan->elements.size() != 2) return Error::internal("unexpected SCAN reply");
    cursor = scan->elements[0].str;
    for (const auto& k : scan->elements[1].elements) keys.push_back(k.str);
  } while (cursor != "0");
  std::vector<std::vector<std::string>> commands;
  std::vector<std::string> labels;
  for (const auto& key : keys) {
    const std::string label = key.substr(prefix_.size() + 6);
    if (label.size() < day.size() || (label.compare(label.size() - day.size(), day.size(), day) != 0 &&
                                      label.compare(label.size() - month.size(), month.size(), month) != 0))
      continue;
    labels.push_back(label);
    commands.push_back({"HMGET", key, "settled", "reserved", "uncharged"});
  }
  if (!commands.empty()) {
    auto replies = pool_->pipeline(commands);
    if (!replies) return replies.error();
    for (std::size_t i = 0; i < labels.size(); ++i) {
      // label: scope:name:period:id
      const auto& l = labels[i];
      const auto p1 = l.find(':'), p3 = l.rfind(':');
      const auto p2 = l.rfind(':', p3 - 1);
      const std::string name = l.substr(p1 + 1, p2 - p1 - 1);
      auto& row = rowFor(l.substr(0, p1), name == "-" ? "" : name, l.substr(p2 + 1, p3 - p2 - 1));
      const auto& v = (*replies)[i].elements;
      auto num = [](const Reply& r) { return r.isNil() ? 0LL : std::stoll(r.str); };
      if (v.size() == 3) {
        row.settled = num(v[0]);
        row.reserved = num(v[1]);
        row.uncharged = num(v[2]);
      }
    }
  }
  std::vector<BucketSpend> out;
  for (auto& [label, row] : rows) out.push_back(std::move(row));
  return out;
}

}  // namespace ticketflow::redis
