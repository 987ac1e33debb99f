#include "local_stack.hpp"

#include <cstdlib>
#include <stdexcept>

#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/embedded.hpp"

namespace ticketflow::local_stack {

LocalStack::LocalStack(Config& config, const LocalStackOptions& options) {
  api_key_ = "sk-local-" + randomTraceId();
  // The key reaches the tier pools the way a real one does: through the provider's variable.
  ::setenv(kLocalApiKeyEnv, api_key_.c_str(), 1);

  broker_ = std::make_unique<kafka::MockBroker>();
  config.kafka.bootstrap_servers = broker_->bootstrapServers();
  config.kafka.partitions = options.partitions;
  for (const auto& topic : kafka::configuredTopics(config)) {
    if (auto st = broker_->createTopic(topic, options.partitions); !st)
      throw std::runtime_error("embedded broker: " + st.error().message);
  }

  redis_ = std::make_unique<redis::EmbeddedRedisServer>(options.redis_append_only);
  config.redis.url = redis_->url();
  config.redis.password.clear();

  auto sim_options = sim::loadSimulatorOptions(
      std::string(embeddedFile("config/sim_profiles.yaml").value_or("")), "<embedded config/sim_profiles.yaml>",
      std::string(embeddedFile("config/runbooks.yaml").value_or("")), "<embedded config/runbooks.yaml>");
  sim_options.latency_scale = options.latency_scale;
  sim_options.expected_api_key = api_key_;
  sim_options.request_log = options.request_log;
  sim_options.max_threads = options.simulator_threads;
  sim_options.labels = options.ticket_labels;
  if (options.faults) {
    sim_options.default_profile.faults = *options.faults;
    for (auto& [model, profile] : sim_options.profiles) profile.faults = *options.faults;
  }
  if (options.adjust_simulator) options.adjust_simulator(sim_options);
  simulator_ = std::make_unique<sim::ProviderSimulator>(std::move(sim_options));
  for (auto& provider : config.providers) {
    // OpenAI-style clients post to {base}/chat/completions, Anthropic-style to {base}/v1/messages.
    provider.base_url = simulator_->baseUrl() + (provider.api == ProviderApi::kOpenAi ? "/v1" : "");
    provider.api_key_env = kLocalApiKeyEnv;
    provider.max_connections = std::max(provider.max_connections, 256);
  }
}

LocalStack::~LocalStack() {
  simulator_.reset();
  redis_.reset();
  broker_.reset();
}

}  // namespace ticketflow::local_stack
