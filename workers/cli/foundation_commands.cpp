// broker, config check, demo: the commands the foundation provides.
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/signals.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/kafka/client.hpp"
#include "ticketflow/redis/client.hpp"
#include "ticketflow/redis/embedded_server.hpp"

namespace ticketflow::app {
namespace {

Config loadConfigOption(const cli::ParsedArgs& args) {
  if (auto path = args.find("config")) return loadConfig(*path);
  return loadEmbeddedConfig();
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int runBroker(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const int partitions = args.has("partitions") ? static_cast<int>(args.getInt("partitions", 1, 256)) : config.kafka.partitions;
  kafka::MockBroker broker;
  auto topics = kafka::configuredTopics(config);
  if (auto extra = args.find("topics")) {
    for (auto& t : splitList(*extra)) topics.push_back(t);
  }
  for (const auto& topic : topics) {
    if (auto st = broker.createTopic(topic, partitions); !st) throw std::runtime_error(st.error().message);
  }
  if (auto file = args.find("bootstrap-file")) {
    // Written to a temporary name and renamed, so a reader never sees half an address.
    const std::string tmp = *file + ".tmp";
    std::ofstream(tmp) << broker.bootstrapServers() << "\n";
    std::rename(tmp.c_str(), file->c_str());
  }
  std::cout << "embedded Kafka broker listening on " << broker.bootstrapServers() << "\n"
            << "topics (" << partitions << " partitions each):";
  for (const auto& t : topics) std::cout << " " << t;
  std::cout << "\nexport TICKETFLOW_KAFKA_BOOTSTRAP=" << broker.bootstrapServers()
            << "\nnot durable: data lives in this process. Ctrl-C or SIGTERM stops it.\n"
            << std::flush;
  while (!waitForTerminationSignal(std::chrono::seconds(1))) {
  }
  std::cout << "broker stopped\n";
  return kExitOk;
}

int runConfigCheck(const cli::ParsedArgs& args) {
  const std::string path = args.positionals().at(0);
  const Config config = loadConfig(path);  // throws ConfigError: main prints file, field, reason
  std::cout << path << ": ok\n"
            << "  providers: " << config.providers.size() << ", models: " << config.models.size() << "\n  tiers:";
  for (const auto& tier : config.tiers) {
    std::cout << " " << tier.name << " [";
    for (std::size_t i = 0; i < tier.models.size(); ++i) std::cout << (i ? ", " : "") << tier.models[i];
    std::cout << "]";
  }
  std::cout << "\n  kafka: " << config.kafka.bootstrap_servers << ", redis: "
            << (config.redis.url.find('@') == std::string::npos ? config.redis.url : "(url with credentials)") << "\n";
  return kExitOk;
}

// Until the pipeline exists, the demo runs the parts that do: the embedded broker and Redis,
// the default configuration, and schema validation of the sample tickets read back from Kafka.
int runDemo(const cli::ParsedArgs& args) {
  Config config = loadConfigOption(args);
  std::cout << "ticketflow demo\n";
  kafka::MockBroker broker;
  config.kafka.bootstrap_servers = broker.bootstrapServers();
  for (const auto& topic : kafka::configuredTopics(config)) {
    if (auto st = broker.createTopic(topic, config.kafka.partitions); !st) throw std::runtime_error(st.error().message);
  }
  std::cout << "  embedded Kafka broker: " << broker.bootstrapServers() << "\n";
  redis::EmbeddedRedisServer redis_server;
  std::cout << "  private redis-server:  " << redis_server.url() << "\n";

  const auto samples = embeddedFile("config/samples/tickets.jsonl");
  if (!samples) throw std::runtime_error("the binary has no config/samples/tickets.jsonl");
  const long long limit = args.getInt("tickets", 1, 1000000);
  kafka::Producer producer(config.kafka, "demo");
  std::istringstream lines{std::string(*samples)};
  long long submitted = 0;
  for (std::string line; submitted < limit && std::getline(lines, line);) {
    if (line.empty()) continue;
    auto ticket = nlohmann::json::parse(line, nullptr, false);
    const std::string key = ticket.is_object() && ticket.contains("id") && ticket["id"].is_string() ? ticket["id"].get<std::string>() : std::to_string(submitted);
    if (auto st = producer.produceSync(config.kafka.topics.inbound, key, line); !st) throw std::runtime_error(st.error().message);
    ++submitted;
  }
  std::cout << "  submitted " << submitted << " sample tickets to " << config.kafka.topics.inbound << "\n";

  kafka::Consumer consumer(config.kafka, "demo", config.kafka.consumer_groups.intake);
  if (auto st = consumer.subscribe({config.kafka.topics.inbound}); !st) throw std::runtime_error(st.error().message);
  long long read = 0, valid = 0;
  std::map<std::string, int> by_tenant;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (read < submitted && std::chrono::steady_clock::now() < deadline) {
    auto msg = consumer.poll(std::chrono::milliseconds(200));
    if (!msg) throw std::runtime_error(msg.error().message);
    if (!msg->has_value()) continue;
    ++read;
    if (auto ticket = parseTicket((*msg)->value)) {
      ++valid;
      ++by_tenant[ticket->tenant];
    } else {
      std::cout << "  invalid ticket at offset " << (*msg)->offset << ": " << ticket.error().message << "\n";
    }
  }
  consumer.close();
  std::cout << "  read back " << read << " tickets through the consumer; " << valid << " valid against schemas/ticket.schema.json\n";
  for (const auto& [tenant, n] : by_tenant) std::cout << "    tenant " << tenant << ": " << n << "\n";
  std::cout << "\nBuilt so far: configuration, schemas, embedded broker and Redis.\n"
               "Not built yet: classifier, tier pools, result writers (the demo grows with them).\n";
  return read == submitted ? kExitOk : kExitFailure;
}

}  // namespace

cli::OptionSpec configOption() {
  return {"config", "FILE", "configuration file (default: the embedded config/ticketflow.yaml)", ""};
}

std::vector<Command> foundationCommands() {
  return {
      {{"broker", "run the embedded Kafka-protocol broker (librdkafka mock cluster) on loopback", "", 0, 0,
        {configOption(),
         {"partitions", "N", "partitions per topic (default: kafka.partitions)", ""},
         {"bootstrap-file", "FILE", "write the bootstrap address to FILE", ""},
         {"topics", "LIST", "extra comma-separated topics to create", ""}},
        "Creates every configured topic, prints the bootstrap address and runs until SIGTERM or SIGINT.\n"
        "Any Kafka client (kcat, librdkafka, Java) can produce and consume. Memory only."},
       runBroker, ""},
      {{"config check", "validate a configuration file", "FILE", 1, 1, {},
        "Checks types, bounds, unknown fields, ${ENV} references and cross-references (a tier naming a\n"
        "missing model, ...). Prints the file, field and reason of the first problem and exits 1."},
       runConfigCheck, ""},
      {{"demo", "run the demo pipeline on the embedded defaults", "", 0, 0,
        {configOption(), {"tickets", "N", "number of sample tickets to submit", "10000"}},
        "Starts the embedded broker and a private redis-server, submits the shipped sample tickets\n"
        "and reports. Cleans up everything it started."},
       runDemo, ""},
  };
}

}  // namespace ticketflow::app
