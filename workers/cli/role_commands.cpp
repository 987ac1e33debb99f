// ticketflow run <role>: the long-running roles each Kubernetes Deployment runs.
#include <iostream>
#include <thread>

#include "command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/provider/prompt.hpp"
#include "ticketflow/stage/stage.hpp"
#include "tier/tier_role.hpp"

namespace ticketflow::app {
namespace {

Config configFrom(const cli::ParsedArgs& args) {
  if (auto path = args.find("config")) return loadConfig(*path);
  return loadEmbeddedConfig();
}

int runTier(const cli::ParsedArgs& args) {
  const Config config = configFrom(args);
  const std::string tier = args.get("tier");
  if (!config.findTier(tier)) throw cli::UsageError("--tier: no tier named '" + tier + "' in " + config.source);
  tier::TierService service(config, tier, tier::httpModelClientFactory(config), SystemClock::instance(),
                            [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); },
                            provider::PromptSet::builtin());
  tier::TierRole role(config, service, tier::callThreadsFor(config, tier));
  stage::StageOptions options;
  options.name = "tier:" + tier;
  options.input_topics = {config.kafka.tierTopic(tier)};
  options.group = config.kafka.tierGroup(tier);
  options.dlq_topic = config.kafka.topics.dlq;
  options.limits = config.stage;
  stage::Stage stage(config.kafka, options, role.handler());
  std::cerr << "tier " << tier << ": consuming " << options.input_topics[0] << " as " << options.group << "\n";
  auto status = stage::runUntilTerminated(stage);
  if (!status) {
    std::cerr << "tier " << tier << ": " << status.error().message << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> roleCommands() {
  return {{{"run tier", "run one tier pool", "", 0, 0,
            {configOption(), {"tier", "NAME", "tier to serve (one of the configuration's tiers)"}},
            "Consumes <tier_prefix><NAME>, calls the tier's model chain (retries, breakers, fallbacks,\n"
            "repair, escalation) and produces results, or escalated tickets for the next tier. Stops on\n"
            "SIGTERM after draining in-flight calls within stage.drain_deadline_ms."},
           runTier, ""}};
}

}  // namespace ticketflow::app
