#pragma once
// Inside the pipeline (not for other code): Pipeline::Impl, the roles a process hosts and the
// stages that feed them. pipeline.cpp makes what roles share and hosts each listed role;
// role_hosting.cpp wires each role (its objects, its stage's topics, group and hand-off).

#include <memory>
#include <string>
#include <vector>

#include "intake/intake_role.hpp"
#include "intake/parking_role.hpp"
#include "pipeline.hpp"
#include "results/feedback_role.hpp"
#include "results/results_role.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/provider/prompt.hpp"
#include "ticketflow/redis/batcher.hpp"
#include "tier/shadow_role.hpp"
#include "tier/tier_role.hpp"

namespace ticketflow::pipeline {

struct Pipeline::Impl {
  // Each role has its own Redis connections: in `run all`, hundreds of tier call threads must
  // not starve the result writer of a connection (each Deployment runs one role anyway).
  struct RoleRedis {
    std::shared_ptr<redis::RedisPool> pool;
    std::unique_ptr<redis::SemanticCache> cache;
    std::unique_ptr<redis::InFlightRegistry> in_flight;  // near-duplicates being answered (coalescing)
    std::unique_ptr<redis::BudgetLedger> ledger;
    std::unique_ptr<redis::RateLimiter> limiter;
    std::unique_ptr<redis::AgreementStore> agreement;  // shadow evaluation's counts
    std::unique_ptr<redis::CommandBatcher> batcher;    // a tier's admission round trips
    // A tier's settle retries, off the batcher's thread (threads start only when one is needed).
    std::unique_ptr<WorkerPool> settle_retries;
  };
  std::vector<std::unique_ptr<RoleRedis>> redis;
  std::unique_ptr<classify::CategoryModel> model;
  std::unique_ptr<intake::IntakeRole> intake;
  std::unique_ptr<intake::ParkingRole> parking;  // runs with intake: deferred tickets back when due
  std::vector<std::unique_ptr<tier::TierService>> tier_services;
  std::vector<std::unique_ptr<tier::TierRole>> tier_roles;
  std::unique_ptr<results::ResultsRole> results;
  std::unique_ptr<classify::EscalationModel> verifier;  // classifier.escalation_model, when a file is named
  std::unique_ptr<tier::QualityFloor> quality_floor;    // shadow.quality_floor > 0
  std::shared_ptr<redis::RedisPool> route_shares_pool;
  std::unique_ptr<redis::RouteShareLoop> route_shares;   // routing.targets
  std::unique_ptr<redis::FeedbackStore> feedback_store;  // feedback.enabled
  std::unique_ptr<results::FeedbackRole> feedback;
  std::unique_ptr<Config> shadow_config;  // the configuration with the tier "shadow" added
  std::unique_ptr<tier::TierService> shadow_service;
  std::unique_ptr<tier::ShadowRole> shadow;
  // What every role's wiring reads: the process's configuration and the parts its roles share.
  struct Host {
    const Config& config;
    observability::PipelineMetrics* metrics;
    observability::Logger* logger;
    tier::ModelClientFactory model_clients;
    provider::PromptSet prompts;
    tier::Sleeper sleeper;
  };
  // One per role (role_hosting.cpp): makes the role's objects on its own Redis connections and
  // adds the stage that feeds it (intake adds its parking stage too). `options` arrives with what
  // every stage shares (name, dead-letter topic, limits, librdkafka overrides, log).
  void hostIntake(const Host& host, RoleRedis& rr, stage::StageOptions options);
  void hostTier(const Host& host, const std::string& tier, RoleRedis& rr, stage::StageOptions options);
  void hostResults(const Host& host, RoleRedis& rr, stage::StageOptions options);
  void hostFeedback(const Host& host, stage::StageOptions options);
  void hostShadow(const Host& host, RoleRedis& rr, stage::StageOptions options);
  // A tier's admission: its rate limiter and ledger, through a command batcher of its own.
  tier::CallAdmission admissionFor(RoleRedis& rr, const std::string& tier);
  void addStage(const Config& config, const stage::StageOptions& options, stage::Handler handler);

  struct RunningStage {
    std::string role;
    std::unique_ptr<stage::Stage> stage;
    stage::StageStats exported;  // what the metrics already count
  };
  std::vector<RunningStage> stages;

  // Stages first (nothing new arrives), then the tier roles' call threads finish their tickets
  // (their calls still send through the batchers), then each batcher answers what it still
  // holds while the tier services and roles its callbacks reach are alive, then the settle
  // retries finish (one more try each: a Redis outage must not keep the process from exiting).
  ~Impl() {
    stages.clear();
    for (auto& role : tier_roles) role->stop();
    // The shadow role's threads wait for their settles: those give up after one more try first.
    if (shadow_service) shadow_service->stopSettleRetries();
    if (shadow) shadow->stop();
    for (auto& service : tier_services) service->stopSettleRetries();
    for (auto& r : redis) r->batcher.reset();
    for (auto& r : redis) r->settle_retries.reset();
  }
};

}  // namespace ticketflow::pipeline
