// broker, config check: the commands the foundation provides.
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/signals.hpp"
#include "ticketflow/kafka/client.hpp"

namespace ticketflow::app {
namespace {

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int runBroker(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const int partitions =
      args.has("partitions") ? static_cast<int>(args.getInt("partitions", 1, 256)) : config.kafka.partitions;
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
  std::cout << "\n  kafka: " << config.kafka.bootstrap_servers << ", redis: " << displayRedisUrl(config.redis.url)
            << "\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> foundationCommands() {
  return {
      {{"broker",
        "run the embedded Kafka-protocol broker (librdkafka mock cluster) on loopback",
        "",
        0,
        0,
        {configOption(),
         {"partitions", "N", "partitions per topic (default: kafka.partitions)", ""},
         {"bootstrap-file", "FILE", "write the bootstrap address to FILE", ""},
         {"topics", "LIST", "extra comma-separated topics to create", ""}},
        "Creates every configured topic, prints the bootstrap address and runs until SIGTERM or SIGINT.\n"
        "Any Kafka client (kcat, librdkafka, Java) can produce and consume. Memory only, and bounded:\n"
        "each partition keeps about 5 MiB (librdkafka's mock cluster drops its oldest records past\n"
        "that), so a producer far ahead of the consumers loses records. ticketflow's roles report it\n"
        "(a log line and ticketflow_consumer_records_lost_total); use a real cluster for volume."},
       runBroker,
       ""},
      {{"config check",
        "validate a configuration file",
        "FILE",
        1,
        1,
        {},
        "Checks types, bounds, unknown fields, ${ENV} references and cross-references (a tier naming a\n"
        "missing model, ...). Prints the file, field and reason of the first problem and exits 1."},
       runConfigCheck,
       ""},
  };
}

}  // namespace ticketflow::app
