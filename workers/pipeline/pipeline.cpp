#include "pipeline.hpp"

#include <iostream>
#include <map>

#include "role_hosting.hpp"
#include "ticketflow/core/signals.hpp"
#include "ticketflow/core/thread_name.hpp"

namespace ticketflow::pipeline {

std::string RoleSpec::name() const {
  switch (role) {
    case Role::kIntake:
      return "intake";
    case Role::kTier:
      return "tier:" + tier;
    case Role::kResults:
      return "results";
    case Role::kShadow:
      return "shadow";
    case Role::kFeedback:
      return "feedback";
  }
  return "unknown";
}

std::vector<RoleSpec> allRoles(const Config& config) {
  std::vector<RoleSpec> roles = {{Role::kIntake, ""}};
  for (const auto& t : config.tiers) roles.push_back({Role::kTier, t.name});
  roles.push_back({Role::kResults, ""});
  if (config.shadow.enabled()) roles.push_back({Role::kShadow, ""});
  if (config.feedback.enabled) roles.push_back({Role::kFeedback, ""});
  return roles;
}

namespace {

observability::LogLevel levelFrom(const Config& config) {
  auto level = observability::parseLogLevel(config.observability.log_level);
  return level.value_or(observability::LogLevel::kInfo);
}

std::shared_ptr<redis::RedisPool> redisPoolFor(const Config& config, int size) {
  if (auto url = redis::parseRedisUrl(config.redis.url); !url)
    throw ConfigError(config.source, "redis.url", url.error().message);
  auto options = redis::RedisPoolOptions::fromConfig(config.redis);
  if (!options) throw ConfigError(config.source, "redis.tls", options.error().message);
  options->pool_size = size;
  return std::make_shared<redis::RedisPool>(*options);
}

}  // namespace

Pipeline::Pipeline(const Config& config, PipelineOptions options)
    : config_(config), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (options_.roles.empty()) throw std::invalid_argument("a pipeline needs at least one role");
  logger_ = std::make_unique<observability::Logger>(options_.process_role, levelFrom(config),
                                                    options_.log_sink ? *options_.log_sink : std::cerr);
  // The process's own connections: health checks, budget gauges, ledger() and cache().
  redis_ = redisPoolFor(config, 2);
  // A server that answers but whose certificate the configured trust refuses will not get better
  // by waiting: stop start-up and say so. (Unreachable is fine: the roles wait for it.)
  if (config.redis.url.rfind("rediss", 0) == 0) {
    auto probe = redis_->command({"PING"});
    if (!probe && probe.error().code == ErrorCode::kInvalidArgument)
      throw ConfigError(config.source, "redis.tls", probe.error().message);
  }
  const auto embedder = embed::makeEmbedder(config);
  cache_ = std::make_unique<redis::SemanticCache>(redis_, config.cache, config.redis.key_prefix, embedder);
  ledger_ = std::make_unique<redis::BudgetLedger>(redis_, config.budgets, config.redis.key_prefix);
  agreement_ = std::make_unique<redis::AgreementStore>(redis_, config.redis.key_prefix);
  auto roleRedis = [&]() -> Impl::RoleRedis& {
    auto r = std::make_unique<Impl::RoleRedis>();
    r->pool = redisPoolFor(config, config.redis.pool_size);
    r->cache = std::make_unique<redis::SemanticCache>(r->pool, config.cache, config.redis.key_prefix, embedder);
    r->in_flight = std::make_unique<redis::InFlightRegistry>(r->pool, config.cache, config.redis.key_prefix, embedder);
    r->ledger = std::make_unique<redis::BudgetLedger>(r->pool, config.budgets, config.redis.key_prefix);
    r->limiter = std::make_unique<redis::RateLimiter>(r->pool, config.redis.key_prefix);
    r->agreement = std::make_unique<redis::AgreementStore>(r->pool, config.redis.key_prefix);
    impl_->redis.push_back(std::move(r));
    return *impl_->redis.back();
  };

  const Impl::Host host{config,
                        &metrics_,
                        logger_.get(),
                        options_.model_clients ? options_.model_clients : tier::httpModelClientFactory(config),
                        provider::PromptSet::builtin(),
                        [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }};
  if (!config.classifier.escalation_model.empty()) {
    auto verifier = classify::EscalationModel::load(config.resolvePath(config.classifier.escalation_model));
    if (!verifier) throw ConfigError(config.source, "classifier.escalation_model", verifier.error().message);
    impl_->verifier = std::make_unique<classify::EscalationModel>(std::move(*verifier));
  }

  if (config.shadow.quality_floor > 0)
    impl_->quality_floor = std::make_unique<tier::QualityFloor>(config.shadow, *agreement_);
  if (config.routing.targets.enabled()) {
    std::function<bool(const std::string&)> easy_tier_closed;
    if (impl_->quality_floor)
      easy_tier_closed = [floor = impl_->quality_floor.get(), tier = config.routing.easy_tier](const std::string& c) {
        return floor->below(tier, c);
      };
    impl_->route_shares_pool = redisPoolFor(config, 2);
    impl_->route_shares = std::make_unique<redis::RouteShareLoop>(
        config, impl_->route_shares_pool, config.redis.key_prefix, std::move(easy_tier_closed), &metrics_,
        SystemClock::instance(), std::chrono::seconds(1), logger_.get());
  }

  if (config.feedback.enabled)
    impl_->feedback_store = std::make_unique<redis::FeedbackStore>(
        redisPoolFor(config, 4), config.redis.key_prefix, std::chrono::hours(24) * config.feedback.retention_days);

  for (const RoleSpec& spec : options_.roles) {
    stage::StageOptions so;
    so.name = spec.name();
    so.dlq_topic = config.kafka.topics.dlq;
    so.limits = config.stage;
    so.consumer_properties = options_.consumer_properties;
    so.producer_properties = options_.producer_properties;
    so.log = [this, name = so.name](const std::string& text) {
      logger_->info("stage", {{"stage", name}, {"detail", text}});
    };
    Impl::RoleRedis& rr = roleRedis();
    switch (spec.role) {
      case Role::kIntake:
        impl_->hostIntake(host, rr, std::move(so));
        break;
      case Role::kTier:
        impl_->hostTier(host, spec.tier, rr, std::move(so));
        break;
      case Role::kResults:
        impl_->hostResults(host, rr, std::move(so));
        break;
      case Role::kFeedback:
        impl_->hostFeedback(host, std::move(so));
        break;
      case Role::kShadow:
        impl_->hostShadow(host, rr, std::move(so));
        break;
    }
  }
  if (options_.http_port >= 0) {
    endpoint_ = std::make_unique<observability::ObservabilityEndpoint>(
        options_.http_port, registry_, [this] { return readiness(); }, options_.http_host);
  }
}

Pipeline::~Pipeline() {
  requestStop();
  (void)wait();
}

void Pipeline::start() {
  std::string roles;
  for (const auto& s : impl_->stages) roles += (roles.empty() ? "" : ",") + s.role;
  logger_->info("starting", {{"roles", roles}, {"kafka", config_.kafka.bootstrap_servers}, {"http_port", httpPort()}});
  for (auto& s : impl_->stages) {
    threads_.emplace_back([this, stage = s.stage.get(), role = s.role] {
      nameThisThread("tf-poll-" + role.substr(role.find(':') + 1));  // "tier:fast" -> "tf-poll-fast"
      auto status = stage->run();
      if (!status) {
        logger_->error("stage_failed", {{"stage", role}, {"error", status.error().message}});
        std::lock_guard lock(status_mutex_);
        if (status_) status_ = status;
      }
    });
  }
  exporter_ = std::thread([this] {
    int round = 0;
    std::unique_lock lock(stop_mutex_);
    while (!stopping_) {
      lock.unlock();
      exportStats();
      // Budget gauges and the Redis check cost a round trip: every 5 s is plenty.
      if (round++ % 10 == 0) {
        auto pong = redis_->command({"PING"});
        redis_ok_ = pong.ok() && pong->type != redis::Reply::Type::kError;
        if (impl_->shadow) exportAgreement();
        if (auto spend = ledger_->show()) {
          for (const auto& b : *spend) {
            if (!b.cap) continue;
            metrics_.budget_remaining.with({b.scope, b.name, b.period})
                .set(static_cast<double>(*b.cap - b.settled - b.reserved));
          }
        }
      }
      lock.lock();
      stop_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_.load(); });
    }
  });
}

void Pipeline::requestStop() {
  {
    std::lock_guard lock(stop_mutex_);
    if (stopping_.exchange(true)) return;
  }
  stop_cv_.notify_all();
  logger_->info("draining", {{"deadline_ms", config_.stage.drain_deadline_ms}});
  for (auto& s : impl_->stages) s.stage->requestStop();
  if (impl_->parking) impl_->parking->stop();  // parked tickets are left uncommitted, not waited for
}

Status Pipeline::wait() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  const bool had_threads = exporter_.joinable();
  if (exporter_.joinable()) exporter_.join();
  if (!impl_->stages.empty()) exportStats();
  if (had_threads) {
    redis::CacheCounters c;
    for (const auto& r : impl_->redis) {
      const auto rc = r->cache->counters();
      c.lookups += rc.lookups;
      c.exact_hits += rc.exact_hits;
      c.semantic_hits += rc.semantic_hits;
      c.misses += rc.misses;
      c.skipped += rc.skipped;
      c.inserts += rc.inserts;
      c.insert_skipped += rc.insert_skipped;
    }
    logger_->info("cache_counters", {{"lookups", c.lookups},
                                     {"exact_hits", c.exact_hits},
                                     {"semantic_hits", c.semantic_hits},
                                     {"misses", c.misses},
                                     {"skipped", c.skipped},
                                     {"inserts", c.inserts},
                                     {"insert_skipped", c.insert_skipped}});
  }
  std::lock_guard lock(status_mutex_);
  return status_;
}

Status Pipeline::runUntilTerminated() {
  start();
  while (!stopping_) {
    if (auto signal = waitForTerminationSignal(std::chrono::milliseconds(200))) {
      logger_->info("signal", {{"signal", *signal}});
      break;
    }
    std::lock_guard lock(status_mutex_);
    if (!status_) break;  // a stage could not run: stop the rest
  }
  requestStop();
  auto status = wait();
  logger_->info("stopped", {{"ok", status.ok()}});
  return status;
}

void Pipeline::exportStats() {
  for (auto& s : impl_->stages) {
    const auto now = s.stage->stats();
    auto& was = s.exported;
    const std::vector<std::string> role = {s.role};
    metrics_.consumed.with(role).inc(static_cast<double>(now.consumed - was.consumed));
    metrics_.succeeded.with(role).inc(static_cast<double>(now.succeeded - was.succeeded));
    metrics_.retried.with(role).inc(static_cast<double>(now.retries - was.retries));
    metrics_.dead_lettered.with(role).inc(static_cast<double>(now.dead_lettered - was.dead_lettered));
    metrics_.offsets_gone.with(role).inc(static_cast<double>(now.offsets_gone - was.offsets_gone));
    metrics_.records_lost.with(role).inc(static_cast<double>(now.records_lost - was.records_lost));
    metrics_.in_flight.with(role).set(static_cast<double>(now.in_flight));
    int paused = 0;
    for (const auto& p : now.partitions) {
      paused += p.paused ? 1 : 0;
      if (p.lag >= 0)
        metrics_.consumer_lag.with({s.role, p.topic, std::to_string(p.partition)}).set(static_cast<double>(p.lag));
    }
    metrics_.partitions_paused.with(role).set(paused);
    for (const auto& o : now.outages) {
      const std::vector<std::string> labels = {s.role, o.cause};
      const stage::OutageStats* before = nullptr;
      for (const auto& w : was.outages)
        if (w.cause == o.cause) before = &w;
      metrics_.outage_held.with(labels).set(static_cast<double>(o.held_now));
      metrics_.outage_held_total.with(labels).inc(static_cast<double>(o.held - (before ? before->held : 0)));
      metrics_.outage_held_seconds.with(labels).inc(o.held_seconds - (before ? before->held_seconds : 0));
      metrics_.outage_dead_lettered.with(labels).inc(
          static_cast<double>(o.dead_lettered - (before ? before->dead_lettered : 0)));
    }
    was = now;
  }
}

void Pipeline::exportAgreement() {
  auto table = agreement_->table();
  if (!table) return;
  for (const auto& [tier, categories] : *table) {
    for (const auto& [category, cell] : categories) {
      const std::pair<const char*, const redis::Proportion*> fields[] = {
          {"category", &cell.category}, {"needs_human", &cell.needs_human}, {"both", &cell.both}};
      for (const auto& [field, p] : fields) {
        if (p->trials == 0) continue;
        metrics_.shadow_agreement.with({tier, category, field, "estimate"}).set(p->estimate());
        metrics_.shadow_agreement.with({tier, category, field, "lower"}).set(p->lower());
        metrics_.shadow_agreement.with({tier, category, field, "upper"}).set(p->upper());
      }
    }
  }
}

std::vector<Pipeline::RoleStats> Pipeline::stats() const {
  std::vector<RoleStats> out;
  for (const auto& s : impl_->stages) out.push_back({s.role, s.stage->stats()});
  return out;
}

observability::Readiness Pipeline::readiness() const {
  observability::Readiness r;
  if (stopping_) r.reasons.push_back("draining");
  if (!redis_ok_) r.reasons.push_back("redis not reachable");
  for (const auto& s : impl_->stages) {
    const auto stats = s.stage->stats();
    if (stats.partitions.empty()) r.reasons.push_back(s.role + ": no partitions assigned");
    for (const auto& o : stats.outages)
      if (o.held_now > 0)
        r.reasons.push_back(s.role + ": holding " + std::to_string(o.held_now) + " message(s) for " +
                            std::to_string(static_cast<std::int64_t>(o.current_seconds)) + " s: " + o.cause +
                            " unavailable (" + o.last_error + ")");
  }
  r.ready = r.reasons.empty();
  return r;
}

int Pipeline::httpPort() const {
  return endpoint_ ? endpoint_->port() : -1;
}

}  // namespace ticketflow::pipeline
