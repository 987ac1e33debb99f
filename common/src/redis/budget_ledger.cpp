#include "ticketflow/redis/budget_ledger.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>

#include "budget_ledger_scripts.hpp"
#include "ticketflow/redis/client.hpp"

namespace ticketflow::redis {
namespace {

using ledger_scripts::purgeScript;
using ledger_scripts::releaseScript;
using ledger_scripts::renewScript;
using ledger_scripts::reserveScript;
using ledger_scripts::settleScript;

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
