// The budget ledger's Lua scripts: each runs atomically in Redis, so a reservation, a settle or
// a release holds under any concurrency (docs/budget-ledger.md).
#include "budget_ledger_scripts.hpp"

#include <string>

namespace ticketflow::redis::ledger_scripts {
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

}  // namespace

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

}  // namespace ticketflow::redis::ledger_scripts
