#pragma once
// A ticketflow process: the roles it runs (intake, tier pools, result writers; `run all` runs
// every one), each a stage on the engine, plus what they share: one Redis pool (semantic cache,
// budget ledger, rate limiter, idempotency markers), the metrics registry, the JSON logger and
// the /metrics /healthz /readyz endpoint.
//
// Start-up faults (unreadable model file, unset API-key variable, bad Kafka property) throw from
// the constructor: main prints them and exits 1. Start order: Redis clients, roles, endpoint,
// then the stages; stop order is the reverse (stages drain and commit first, then the rest).
//
// Threading: start(), requestStop() and wait() from the owning thread; stats() and readiness()
// from any thread.

#include <atomic>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/observability/endpoint.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/metrics.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/semantic_cache.hpp"
#include "ticketflow/stage/stage.hpp"
#include "tier/tier_service.hpp"

namespace ticketflow::pipeline {

enum class Role { kIntake, kTier, kResults, kShadow, kFeedback };

struct RoleSpec {
  Role role = Role::kIntake;
  std::string tier;          // kTier
  std::string name() const;  // "intake", "tier:fast", "results", "shadow"
};

// intake, every tier (cheapest first), results, and shadow when shadow.sample is set: what
// `ticketflow run all` runs.
std::vector<RoleSpec> allRoles(const Config& config);

struct PipelineOptions {
  std::vector<RoleSpec> roles;
  std::string process_role = "all";  // the `role` field of log lines
  int http_port = -1;                // -1: no endpoint; 0: any free port (tests)
  std::string http_host = "0.0.0.0";
  std::ostream* log_sink = nullptr;        // null: std::cerr
  tier::ModelClientFactory model_clients;  // empty: real HTTP clients (httpModelClientFactory)
  kafka::Properties consumer_properties;   // librdkafka overrides for every stage (tests, benchmarks)
  kafka::Properties producer_properties;
};

class Pipeline {
 public:
  Pipeline(const Config& config, PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Starts every stage on its own thread.
  void start();
  // Every stage stops fetching, drains within stage.drain_deadline_ms and commits.
  void requestStop();
  // Joins the stages; the first error of a stage that could not run, else OK.
  Status wait();
  // start(), then until SIGTERM/SIGINT/SIGHUP (blocked by main), then requestStop() and wait().
  Status runUntilTerminated();

  struct RoleStats {
    std::string role;
    stage::StageStats stats;
  };
  std::vector<RoleStats> stats() const;
  observability::Readiness readiness() const;
  // The endpoint's port, or -1 when there is none.
  int httpPort() const;

  observability::MetricsRegistry& metrics() { return registry_; }
  observability::Logger& logger() { return *logger_; }
  redis::BudgetLedger& ledger() { return *ledger_; }
  redis::SemanticCache& cache() { return *cache_; }
  redis::AgreementStore& agreement() { return *agreement_; }

  struct Impl;

 private:
  void exportStats();
  void exportAgreement();  // shadow agreement gauges, cluster-wide (from Redis)

  const Config& config_;
  PipelineOptions options_;
  observability::MetricsRegistry registry_;
  observability::PipelineMetrics metrics_{registry_};
  std::unique_ptr<observability::Logger> logger_;
  std::shared_ptr<redis::RedisPool> redis_;
  std::unique_ptr<redis::SemanticCache> cache_;
  std::unique_ptr<redis::BudgetLedger> ledger_;
  std::unique_ptr<redis::AgreementStore> agreement_;
  std::unique_ptr<Impl> impl_;  // roles and stages
  std::unique_ptr<observability::ObservabilityEndpoint> endpoint_;
  std::vector<std::thread> threads_;
  std::thread exporter_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> redis_ok_{false};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  std::mutex status_mutex_;
  Status status_;
};

}  // namespace ticketflow::pipeline
