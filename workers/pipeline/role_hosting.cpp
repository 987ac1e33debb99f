#include "role_hosting.hpp"

#include <stdexcept>

#include "ticketflow/core/clock.hpp"

namespace ticketflow::pipeline {

void Pipeline::Impl::addStage(const Config& config, const stage::StageOptions& options, stage::Handler handler) {
  stages.push_back({options.name, std::make_unique<stage::Stage>(config.kafka, options, std::move(handler)), {}});
}

tier::CallAdmission Pipeline::Impl::admissionFor(RoleRedis& rr, const std::string& tier) {
  rr.batcher = std::make_unique<redis::CommandBatcher>(rr.pool);
  rr.settle_retries = std::make_unique<WorkerPool>(4, "tf-settle-" + tier);
  return tier::CallAdmission{
      rr.limiter.get(), rr.ledger.get(), std::chrono::milliseconds(30000), rr.batcher.get(),
      [pool = rr.settle_retries.get()](std::function<void()> retry) { pool->submit(std::move(retry)); }};
}

void Pipeline::Impl::hostIntake(const Host& host, RoleRedis& rr, stage::StageOptions options) {
  const Config& config = host.config;
  const std::string path = config.resolvePath(config.classifier.category_model);
  auto loaded = classify::CategoryModel::load(path);
  if (!loaded) throw ConfigError(config.source, "classifier.category_model", loaded.error().message);
  model = std::make_unique<classify::CategoryModel>(std::move(*loaded));
  intake = std::make_unique<intake::IntakeRole>(config, *model, rr.cache.get(), host.metrics, SystemClock::instance(),
                                                host.logger, rr.ledger.get(), rr.in_flight.get(), route_shares.get());
  options.input_topics = {config.kafka.topics.inbound};
  options.group = config.kafka.consumer_groups.intake;

  // Its parking stage: tickets a cap deferred, back to their tier when due.
  parking = std::make_unique<intake::ParkingRole>(config, rr.ledger.get(), SystemClock::instance(), host.metrics,
                                                  host.logger);
  stage::StageOptions parked = options;
  parked.name = "parking";
  parked.input_topics = {config.kafka.topics.deferred};
  parked.group = config.kafka.consumer_groups.deferred;
  parked.handler_hands_off = true;  // it parks or answers at once
  // Parked tickets wait minutes to hours: the idle topic needs no eager fetches (a caller's
  // short fetch.wait.max.ms, meant for the hot path, would wake its fetcher 1,000 times a second).
  parked.consumer_properties["fetch.wait.max.ms"] = "500";
  parked.log = [logger = host.logger](const std::string& text) {
    logger->info("stage", {{"stage", "parking"}, {"detail", text}});
  };
  addStage(config, parked, parking->handler());
  addStage(config, options, intake->handler());
}

void Pipeline::Impl::hostTier(const Host& host, const std::string& tier, RoleRedis& rr, stage::StageOptions options) {
  const Config& config = host.config;
  if (!config.findTier(tier)) throw std::invalid_argument("no tier named '" + tier + "' in " + config.source);
  tier::TierPolicy policy;
  policy.verifier = verifier.get();
  if (quality_floor)
    policy.below_quality_floor = [floor = quality_floor.get(), tier](const std::string& c) {
      return floor->below(tier, c);
    };
  if (route_shares)
    policy.route_thresholds = [loop = route_shares.get()](const std::string& c) { return loop->thresholdsFor(c); };
  tier_services.push_back(std::make_unique<tier::TierService>(config, tier, host.model_clients, SystemClock::instance(),
                                                              host.sleeper, host.prompts, policy,
                                                              admissionFor(rr, tier), host.metrics));
  tier_roles.push_back(std::make_unique<tier::TierRole>(
      config, *tier_services.back(), tier::callThreadsFor(config, tier), SystemClock::instance(), rr.cache.get(),
      host.metrics, host.logger, rr.in_flight.get(), config.shadow.enabled() ? rr.agreement.get() : nullptr,
      route_shares.get(), feedback_store.get()));
  options.input_topics = {config.kafka.tierTopic(tier)};
  options.group = config.kafka.tierGroup(tier);
  // TierRole::handler parses the ticket and sends its first admission to the batcher (or queues
  // it for a turn); it never blocks.
  options.handler_hands_off = true;
  addStage(config, options, tier_roles.back()->handler());
}

void Pipeline::Impl::hostResults(const Host& host, RoleRedis& rr, stage::StageOptions options) {
  const Config& config = host.config;
  results = std::make_unique<results::ResultsRole>(
      config, results::makeSinks(config),
      std::make_unique<redis::RedisWrittenMarkers>(rr.pool, config.redis.key_prefix, config.results.idempotency_ttl_s),
      host.metrics, SystemClock::instance(), 32, host.logger);
  options.input_topics = {config.kafka.topics.results};
  options.group = config.kafka.consumer_groups.results;
  // Exactly once on the updates topic: a record is delivered within the topic sink's timeout or
  // never (the client gives up then, and the broker waits no longer for its replicas), so a
  // redelivery knows when a look-up for it is final.
  if (config.results.exactly_once) {
    const std::string timeout_ms = std::to_string(results::ResultsRole::topicWriteTimeoutMs(config));
    options.producer_properties["message.timeout.ms"] = timeout_ms;
    options.producer_properties["request.timeout.ms"] = timeout_ms;
  }
  // ResultsRole::handler parses and passes the update on (the marker batcher, the HTTP sinks'
  // threads); it never blocks.
  options.handler_hands_off = true;
  addStage(config, options, results->handler());
}

void Pipeline::Impl::hostFeedback(const Host& host, stage::StageOptions options) {
  const Config& config = host.config;
  if (feedback) throw std::invalid_argument("the feedback role is listed twice");
  if (!feedback_store)
    throw ConfigError(config.source, "feedback.enabled", "the feedback role needs feedback.enabled: true");
  feedback = std::make_unique<results::FeedbackRole>(*feedback_store, host.metrics, host.logger);
  options.input_topics = {config.kafka.topics.feedback};
  options.group = config.kafka.consumer_groups.feedback;
  addStage(config, options, feedback->handler());
}

void Pipeline::Impl::hostShadow(const Host& host, RoleRedis& rr, stage::StageOptions options) {
  const Config& config = host.config;
  if (shadow) throw std::invalid_argument("the shadow role is listed twice");
  shadow_config = std::make_unique<Config>(tier::withShadowTier(config));
  shadow_service = std::make_unique<tier::TierService>(*shadow_config, kShadowTier, host.model_clients,
                                                       SystemClock::instance(), host.sleeper, host.prompts,
                                                       tier::TierPolicy{}, admissionFor(rr, kShadowTier), host.metrics);
  shadow = std::make_unique<tier::ShadowRole>(config, *shadow_service, *rr.agreement,
                                              tier::callThreadsFor(config, config.shadow.reference_tier), host.metrics,
                                              host.logger);
  options.input_topics = {config.kafka.topics.shadow};
  options.group = config.kafka.consumer_groups.shadow;
  options.handler_hands_off = true;  // reference calls run on the role's pool
  addStage(config, options, shadow->handler());
}

}  // namespace ticketflow::pipeline
