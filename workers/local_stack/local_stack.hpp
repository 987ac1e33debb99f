#pragma once
// The embedded defaults a laptop, the demo, `triage --embedded`, the pipeline benchmark and the
// end-to-end tests run on: librdkafka's mock cluster (a real Kafka wire-protocol broker, in this
// process), a private redis-server on a free loopback port, and the provider simulator. The
// constructor starts them and points the configuration at them: bootstrap servers, Redis URL,
// and every provider's base URL and API key (a random key the simulator insists on, so a test
// can look for it in logs). The destructor stops everything it started.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "sim/simulator.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/kafka/client.hpp"
#include "ticketflow/redis/embedded_server.hpp"

namespace ticketflow::local_stack {

struct LocalStackOptions {
  int partitions = 4;
  double latency_scale = 1.0;             // simulator latencies (0: answer at once)
  std::optional<sim::FaultRates> faults;  // for every model; none: the profiles' own (no faults by default)
  std::string request_log;                // the simulator's request log, "" for none
  bool redis_append_only = false;         // the private redis-server keeps its data across a restart
  int simulator_threads = 1024;
  sim::TicketLabels ticket_labels;  // true categories the simulator answers by (competence.hpp)
  // Changes the simulator's profiles before it starts (a test makes one model poor at a category).
  std::function<void(sim::SimulatorOptions&)> adjust_simulator;
};

// The environment variable the local stack puts the simulator's API key in.
inline constexpr const char* kLocalApiKeyEnv = "TICKETFLOW_LOCAL_API_KEY";

class LocalStack {
 public:
  // Rewrites `config` in place (see above). Throws std::runtime_error naming the fix when a part
  // cannot start (redis-server missing: run scripts/bootstrap).
  LocalStack(Config& config, const LocalStackOptions& options);
  ~LocalStack();
  LocalStack(const LocalStack&) = delete;
  LocalStack& operator=(const LocalStack&) = delete;

  const std::string& bootstrapServers() const { return broker_->bootstrapServers(); }
  std::string redisUrl() const { return redis_->url(); }
  std::string simulatorUrl() const { return simulator_->baseUrl(); }
  const std::string& apiKey() const { return api_key_; }
  sim::SimulatorStats simulatorStats() const { return simulator_->stats(); }
  redis::EmbeddedRedisServer& redisServer() { return *redis_; }
  sim::ProviderSimulator& simulator() { return *simulator_; }
  // What every consumer on the embedded broker should set: the mock cluster answers an empty
  // fetch only when fetch.wait.max.ms (500 ms by default) ends, so a message waits that long a hop.
  static kafka::Properties consumerProperties() { return {{"fetch.wait.max.ms", "10"}}; }

 private:
  std::string api_key_;
  std::unique_ptr<kafka::MockBroker> broker_;
  std::unique_ptr<redis::EmbeddedRedisServer> redis_;
  std::unique_ptr<sim::ProviderSimulator> simulator_;
};

}  // namespace ticketflow::local_stack
