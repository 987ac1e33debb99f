#include "ticketflow/redis/route_shares.hpp"

#include <algorithm>
#include <cstdio>

namespace ticketflow::redis {
namespace {

// KEYS: window hash. ARGV: tier, category, cohort size, the answer's thresholds version. A window
// holds the answers of one version's cohort: a newer version starts it afresh, an older one is not
// counted (-1). The answer that completes the cohort takes the window.
const RedisScript& recordScript() {
  static const RedisScript s(R"lua(
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local mine = tonumber(ARGV[4])
if mine < v then return -1 end
if mine > v then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'v', mine)
end
redis.call('HINCRBY', KEYS[1], 't|' .. ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], 'c|' .. ARGV[2], 1)
redis.call('HSET', KEYS[1], 'at', redis.call('TIME')[1])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n < tonumber(ARGV[3]) then return 0 end
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
)lua");
  return s;
}

// KEYS: thresholds hash. ARGV: expected version, then field/value pairs. Compare-and-set.
const RedisScript& storeScript() {
  static const RedisScript s(R"lua(
local v = redis.call('HGET', KEYS[1], 'version') or '0'
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', tonumber(ARGV[1]) + 1)
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
)lua");
  return s;
}

// KEYS: the version's cohort set, the window hash. ARGV: ticket, cohort size, version, seconds
// after which a window with most of its cohort answered closes without the rest. Replies
// {measured (0/1), the window's fields when this call closed it}. Once in the cohort, always in (a
// redelivery asks again). Some of a cohort may never reach a model (a cap's hand-off, a lost
// count): a full cohort whose window has 90% and no answer for that long is closed by the next
// ticket that arrives, so the loop never stalls.
const RedisScript& enrollScript() {
  static const RedisScript s(R"lua(
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1} end
local size = tonumber(ARGV[2])
if redis.call('SCARD', KEYS[1]) < size then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], 86400)
  return {1}
end
local v = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
local n = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local at = tonumber(redis.call('HGET', KEYS[2], 'at') or '0')
local now = tonumber(redis.call('TIME')[1])
if v == tonumber(ARGV[3]) and n * 10 >= size * 9 and now - at >= tonumber(ARGV[4]) then
  local all = redis.call('HGETALL', KEYS[2])
  redis.call('DEL', KEYS[2])
  return {0, all}
end
return {0}
)lua");
  return s;
}

classify::ShareWindow windowFrom(const std::vector<Reply>& fields) {
  classify::ShareWindow closed;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string& field = fields[i].str;
    if (field.rfind("t|", 0) == 0) {
      try {
        closed.answered_by_tier[field.substr(2)] = std::stoll(fields[i + 1].str);
      } catch (const std::exception&) {
      }
    } else if (field.rfind("c|", 0) == 0) {
      closed.categories.insert(field.substr(2));
    }
  }
  return closed;
}

std::string number(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", value);
  return buf;
}

}  // namespace

RouteShareStore::RouteShareStore(std::shared_ptr<RedisPool> pool, std::string key_prefix)
    : pool_(std::move(pool)),
      window_key_(key_prefix + "routing:window"),
      thresholds_key_(key_prefix + "routing:thresholds"),
      cohort_prefix_(key_prefix + "routing:cohort:") {}

Result<Enrolment> RouteShareStore::enroll(std::int64_t version, const std::string& ticket, int window,
                                          std::chrono::seconds stale_after) {
  auto reply =
      pool_->eval(enrollScript(), {cohort_prefix_ + std::to_string(version), window_key_},
                  {ticket, std::to_string(window), std::to_string(version), std::to_string(stale_after.count())});
  if (auto status = replyStatus(reply, "route cohort"); !status) return status.error();
  if (reply->type != Reply::Type::kArray || reply->elements.empty())
    return Error::internal("route cohort: unexpected reply");
  Enrolment e;
  e.measured = reply->elements[0].integer == 1;
  if (reply->elements.size() > 1) e.closed = windowFrom(reply->elements[1].elements);
  return e;
}

Result<std::optional<classify::ShareWindow>> RouteShareStore::recordAnswer(const std::string& tier,
                                                                           const std::string& category, int window,
                                                                           std::int64_t version) {
  auto reply =
      pool_->eval(recordScript(), {window_key_}, {tier, category, std::to_string(window), std::to_string(version)});
  if (auto status = replyStatus(reply, "route share count"); !status) return status.error();
  if (reply->type != Reply::Type::kArray) return std::optional<classify::ShareWindow>{};
  return std::optional<classify::ShareWindow>(windowFrom(reply->elements));
}

Result<std::optional<classify::RouteThresholds>> RouteShareStore::thresholds() {
  auto reply = pool_->command({"HGETALL", thresholds_key_});
  if (auto status = replyStatus(reply, "route thresholds"); !status) return status.error();
  if (reply->elements.empty()) return std::optional<classify::RouteThresholds>{};
  classify::RouteThresholds t;
  for (std::size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
    const std::string& field = reply->elements[i].str;
    const std::string& value = reply->elements[i + 1].str;
    try {
      if (field == "version")
        t.version = std::stoll(value);
      else if (field == "easy_below")
        t.easy_below = std::stod(value);
      else if (field == "hard_from")
        t.hard_from = std::stod(value);
      else if (field.rfind("easy_below|", 0) == 0)
        t.easy_below_by_category[field.substr(11)] = std::stod(value);
    } catch (const std::exception&) {
      return Error::internal("route thresholds: field '" + field + "' is not a number");
    }
  }
  return std::optional<classify::RouteThresholds>(std::move(t));
}

Result<bool> RouteShareStore::storeThresholds(const classify::RouteThresholds& next, std::int64_t expected_version) {
  std::vector<std::string> args = {std::to_string(expected_version), "easy_below", number(next.easy_below), "hard_from",
                                   number(next.hard_from)};
  for (const auto& [category, easy] : next.easy_below_by_category) {
    args.push_back("easy_below|" + category);
    args.push_back(number(easy));
  }
  auto reply = pool_->eval(storeScript(), {thresholds_key_}, args);
  if (auto status = replyStatus(reply, "route thresholds store"); !status) return status.error();
  return reply->integer == 1;
}

Status RouteShareStore::reset(const DifficultyConfig& configured) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto current = thresholds();
    if (!current) return current.error();
    const std::int64_t version = *current ? (*current)->version : 0;
    auto stored = storeThresholds(classify::RouteThresholds::configured(configured), version);
    if (!stored) return stored.error();
    if (*stored) return replyStatus(pool_->command({"DEL", window_key_}), "route shares reset");
  }
  return Error::unavailable("route shares reset: the thresholds kept changing; try again");
}

RouteShareLoop::RouteShareLoop(const Config& config, std::shared_ptr<RedisPool> pool, std::string key_prefix,
                               std::function<bool(const std::string&)> easy_tier_closed,
                               observability::PipelineMetrics* metrics, const Clock& clock,
                               std::chrono::milliseconds refresh, observability::Logger* logger)
    : config_(config),
      store_(std::move(pool), std::move(key_prefix)),
      easy_tier_closed_(std::move(easy_tier_closed)),
      metrics_(metrics),
      logger_(logger),
      clock_(clock),
      refresh_(refresh),
      thresholds_(classify::RouteThresholds::configured(config.classifier.difficulty)) {
  if (metrics_)
    for (const auto& [tier, share] : config_.routing.targets.shares)
      metrics_->route_share.with({tier, "target"}).set(share);
  publish(thresholds_);
}

void RouteShareLoop::refreshIfDue() {
  {
    std::lock_guard lock(mutex_);
    if (reading_ || (read_ && clock_.steadyNow() - read_at_ < refresh_)) return;
    reading_ = true;
  }
  auto shared = store_.thresholds();
  std::lock_guard lock(mutex_);
  reading_ = false;
  read_at_ = clock_.steadyNow();
  if (!shared) return;  // Redis away: the last ones hold; tried again after `refresh`
  read_ = true;
  if (*shared && (*shared)->version != thresholds_.version) {
    thresholds_ = **shared;
    publish(thresholds_);
  }
}

classify::Thresholds RouteShareLoop::thresholdsFor(const std::string& category) {
  refreshIfDue();
  std::lock_guard lock(mutex_);
  return thresholds_.forCategory(category);
}

classify::RouteThresholds RouteShareLoop::current() {
  refreshIfDue();
  std::lock_guard lock(mutex_);
  return thresholds_;
}

ShareStamp RouteShareLoop::enroll(const std::string& ticket) {
  ShareStamp stamp;
  stamp.version = version();
  auto enrolment = store_.enroll(stamp.version, ticket, config_.routing.targets.window, kStaleWindow);
  if (!enrolment) return stamp;  // Redis away: not measured, never held
  stamp.measured = enrolment->measured;
  if (enrolment->closed) adjust(*enrolment->closed);
  return stamp;
}

std::int64_t RouteShareLoop::version() {
  refreshIfDue();
  std::lock_guard lock(mutex_);
  return thresholds_.version;
}

void RouteShareLoop::answered(const std::string& tier, const std::string& category, std::int64_t version) {
  auto closed = store_.recordAnswer(tier, category, config_.routing.targets.window, version);
  if (closed && *closed) adjust(**closed);
}

void RouteShareLoop::adjust(const classify::ShareWindow& window) {
  if (metrics_) {
    metrics_->route_adjustments.with({}).inc();
    for (const auto& [tier, share] : config_.routing.targets.shares)
      metrics_->route_share.with({tier, "share"}).set(window.shareOf(tier));
  }
  // Two tries: another process may have written between the read and the write.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto shared = store_.thresholds();
    if (!shared) return;  // Redis away: this window is not acted on
    const classify::RouteThresholds base =
        *shared ? **shared : classify::RouteThresholds::configured(config_.classifier.difficulty);
    auto next = classify::adjustForShares(base, config_.routing, window, easy_tier_closed_);
    auto stored = store_.storeThresholds(next, base.version);
    if (!stored) return;
    if (*stored) {
      next.version = base.version + 1;
      if (logger_) {
        nlohmann::json shares = nlohmann::json::object();
        for (const auto& [tier, target] : config_.routing.targets.shares) shares[tier] = window.shareOf(tier);
        logger_->info("route_thresholds_moved", {{"version", next.version},
                                                 {"window_shares", shares},
                                                 {"easy_below", next.easy_below},
                                                 {"hard_from", next.hard_from},
                                                 {"kept_easy_below", next.easy_below_by_category}});
      }
      std::lock_guard lock(mutex_);
      thresholds_ = next;
      read_ = true;
      read_at_ = clock_.steadyNow();
      publish(thresholds_);
      return;
    }
  }
}

void RouteShareLoop::publish(const classify::RouteThresholds& t) {
  if (!metrics_) return;
  metrics_->route_threshold.with({"easy_below", "*"}).set(t.easy_below);
  metrics_->route_threshold.with({"hard_from", "*"}).set(t.hard_from);
  for (const auto& [category, easy] : t.easy_below_by_category)
    metrics_->route_threshold.with({"easy_below", category}).set(easy);
}

}  // namespace ticketflow::redis
